"""provision: turn fresh Linux boxes into working GPU workstations, declaratively."""
__version__ = "0.1.0"
