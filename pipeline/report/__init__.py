"""Report: people → tracks → observations, read back from a finished run's files, as report.html,
gallery.png and people.json.

Everything is read from disk (`read`), so `enhance-faces gallery OUT_DIR` regenerates it without reprocessing;
`analyse` picks the observations worth showing and groups tracks into people (`people`); `write` puts
out people.json, gallery.png (`sheet`) and report.html (`html`, a Jinja2 template).
"""

from .analyse import Analysis, analyse
from .write import GALLERY, PEOPLE, REPORT, write_report

__all__ = ["GALLERY", "PEOPLE", "REPORT", "Analysis", "analyse", "write_report"]
