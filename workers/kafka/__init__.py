"""Kafka plumbing shared by the processes: client configurations, topics, offset tracking,
transactions, dead letters, throwaway topics."""
