// What a user of JobQ configures and catches about Redis — `RedisConfiguration`, `RedisTLS`,
// `RedisError`, `RedisEndpoint` and the `RedisClient` handle a queue and a worker are made
// with — comes with `import JobQ`. The rest of the Redis layer is `package`: JobQ is a queue,
// not a general-purpose Redis client.
@_exported public import JobQRedis
