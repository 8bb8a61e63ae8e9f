"""Shared utilities with no knowledge of audio or models: atomic file writes and the one
"cannot write" error (atomic), the append-only CSV log (csvlog), worker processes (processes;
torch's worker set-up in workers), the torch device (device) and where log messages go (logs).
"""
