"""Where results go: ClickHouse (embedded chDB or a server), the console, Slack."""
