"""Typing shared by the operators: the set of states Blender accepts back."""

from typing import Literal

Result = set[Literal["RUNNING_MODAL", "CANCELLED", "FINISHED", "PASS_THROUGH", "INTERFACE"]]
