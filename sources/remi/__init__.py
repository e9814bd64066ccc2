"""ReMI (Reasoning with Multiple Images) -> MSR records. See sources/remi/README.md."""

from sources.base import Source
from sources.remi import parse
from sources.remi.reader import ReadReMI

SOURCE = Source(
    name="remi", reader=ReadReMI, restructure=parse.restructure, check_options=parse.check_options
)

__all__ = ["SOURCE", "ReadReMI"]
