"""Stub of vmcore.abi: the ABI names of vmcore._engine, re-exported."""
from vmcore._engine import *
