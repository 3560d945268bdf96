"""Typed exceptions raised by the core; only `priorsep.cli` turns them into messages and codes."""


class PriorsepError(Exception):
    """Base class of every error priorsep reports to a user."""

    exit_code = 1


class UsageError(PriorsepError):
    """An option or argument has a value the command cannot use."""

    exit_code = 2


class AudioReadError(PriorsepError):
    """An audio file is missing, unreadable or not audio."""

    exit_code = 3


class DatasetError(PriorsepError):
    """A dataset root does not have the expected layout or holds no usable audio."""

    exit_code = 4


class UnusableAudioError(DatasetError):
    """Some files of a dataset are unusable (unreadable, non-finite, silent, too short) and
    leaving them out was not allowed."""

    exit_code = 13


class ModelNotFoundError(PriorsepError):
    """A model id names no bundled model, local folder or reachable repository."""

    exit_code = 5


class ModelFormatError(PriorsepError):
    """A model folder exists but a file in it is missing, corrupt or of an unknown version."""

    exit_code = 6


class ModelNotCachedError(ModelNotFoundError):
    """Offline mode is on and the requested Hub model is not in the local cache."""

    exit_code = 8


class HubUnreachableError(PriorsepError):
    """The Hub could not be reached (network failure, timeout, server error); nothing cached."""

    exit_code = 9


class ModelIntegrityError(ModelFormatError):
    """A downloaded model file does not match the checksum the Hub announced for it."""

    exit_code = 10


class CacheError(PriorsepError):
    """The Hugging Face cache cannot be used: a file where a folder should be, no permission,
    or the disk full during a download."""

    exit_code = 17


class CheckpointError(PriorsepError):
    """A training checkpoint cannot be resumed (missing, corrupt, or from another config)."""

    exit_code = 7


class CheckpointExistsError(UsageError):
    """A fresh training run would start over an existing checkpoint (`path`)."""

    def __init__(self, path) -> None:
        super().__init__(f"{path} exists: resume it, or write to another folder")
        self.path = path


class TrainingInterrupted(PriorsepError):
    """Training was stopped by the user after a checkpoint was saved."""

    exit_code = 130


class CapabilityError(PriorsepError, NotImplementedError):
    """A prior family lacks what was asked of it (e.g. `log_prob` of a score-only prior)."""

    exit_code = 2


class OutputExistsError(UsageError):
    """An output file exists and replacing it was not asked for."""


class OutputWriteError(PriorsepError):
    """An output file could not be written (disk full, permissions, a path in the way)."""

    exit_code = 11


class TrainingDiverged(PriorsepError):
    """The training loss became NaN or infinite; nothing was saved from the broken step."""

    exit_code = 12


class SynthesiserNotFoundError(PriorsepError):
    """Rendering MIDI needs FluidSynth and a soundfont, and one of them is missing or broken."""

    exit_code = 14


class MidiReadError(PriorsepError):
    """A MIDI file (or a corpus query) is missing, unreadable or not MIDI."""

    exit_code = 15


class PartMappingError(PriorsepError):
    """The parts of a score and the instruments asked for do not match: a part maps to no
    instrument, an instrument to no part, or a part has no notes."""

    exit_code = 16
