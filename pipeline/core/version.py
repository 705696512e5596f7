"""The package's version, in a module of its own: stages record it without importing the package itself."""

__version__ = "0.1.0"
