INSERT INTO jobs (tenant, queue, kind, args, priority, state, max_attempts, run_at, created_at,
                  expires_at, unique_key, unique_period_us, timeout_ms, tags, meta, retry)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
