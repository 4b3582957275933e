"""Helpers every layer uses: input checks, device resolution, atomic I/O, hashing, provenance."""

