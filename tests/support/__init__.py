"""Helpers the test suites share (instead of tests importing each other)."""
