"""The worker pool: fair queues per lane, workers as local processes or Ray actors, the runner that
executes a spec inside a worker, and the ETAs shown while jobs wait."""
