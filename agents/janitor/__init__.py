"""The job janitor: retries failed jobs whose error is retryable, within policy limits."""
