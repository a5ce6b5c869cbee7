//! The schedule language: cron expressions and whenever-style readable
//! schedules, next-fire computation in any IANA time zone, and crontab export.
