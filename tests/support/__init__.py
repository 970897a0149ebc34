"""Helpers shared by every test folder, importable as ``support`` (pytest's ``pythonpath``
names ``tests``): one way to run the CLI, to detect CI, to write a sandbox config, to drive
terraform. A helper used by one folder stays in that folder."""
