"""Enhance: the progressive face super-resolution generator and its run-time stage."""
