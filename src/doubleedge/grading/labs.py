"""The labs, for the import path the lab notebooks use (``from doubleedge.grading.labs import
get_lab``). The registry is the lab packages' discovery: doubleedge.labs."""

from doubleedge.labs import LABS, Lab, get_lab

__all__ = ["LABS", "Lab", "get_lab"]
