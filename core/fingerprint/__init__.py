"""Fingerprints: binning, the Fingerprint with its file format and validation, and the pipeline that makes one."""
