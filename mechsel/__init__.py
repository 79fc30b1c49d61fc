"""mechsel: do a model's internals know which in-context demonstrations will help it?"""

__version__ = "0.1.0"
