"""Drivers: turn what a hypervisor (or a caller) knows into ConsoleConnection objects."""
