"""Learning-history datasets: the file format, its loader and validation."""

from ad_gym.data.histories import History, HistoryFileError, load_histories, read_history, save_history

__all__ = ["History", "HistoryFileError", "load_histories", "read_history", "save_history"]
