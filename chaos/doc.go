// Package chaos is sinkworker's chaos suite, in the spirit of Jepsen: TestChaos
// runs the real sinkworker binary as 1 to 4 processes in one consumer group
// against the real broker and PostgreSQL while a producer writes continuously,
// injects faults at times drawn from a seeded random source (SIGKILL and
// restart, joins, SIGTERM leaves, database and broker restarts, SIGSTOP
// zombies), then checks the final table against a model built from the topic
// itself. It has no code outside its tests; README.md says how to run it
// (CI size by default, CHAOS_SIZE=full for the long run, CHAOS_SEED to
// replay a schedule) and what each check means.
package chaos
