"""The one exception type a user can cause: its message is shown verbatim.

Everything that is the user's doing (a bad photo, no face, an existing output
folder) raises FaceStageError with one clear sentence; the CLI prints it with
exit code 2 and the add-on reports it, so nobody ever sees a traceback for it.
"""


class FaceStageError(Exception):
    """A problem the user can fix; str(error) is a complete sentence."""


class Cancelled(FaceStageError):
    """The user stopped the run; nothing was written."""

    def __init__(self, message: str = "Reconstruction cancelled; nothing was written.") -> None:
        super().__init__(message)
