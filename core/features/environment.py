"""The library versions a catalogue was built with, and warnings when the running ones differ in a way that
changes results.

Two kinds of difference matter, and they matter differently:

* **features** (python, numpy, torch, timm): a user's fingerprint made with another torch or timm can differ from
  the catalogue's in the last float digits, which moves a few values across bin edges. Rankings are robust to
  this, but a user comparing exact distances across machines should know.
* **map** (umap-learn, numba, scikit-learn): the shipped map's coordinates are computed once at build time and
  never refit by the app. Refitting it (``catalogue refresh`` or ``catalogue add``) with other versions gives a
  different layout with the same neighbourhoods; the tool says so instead of doing it silently.
"""
from __future__ import annotations

import platform
from importlib import metadata

#: distribution name -> what a change of its version can alter
RESULT_LIBRARIES = {
    "numpy": "features", "torch": "features", "timm": "features",
    "umap-learn": "map", "numba": "map", "scikit-learn": "map",
}


def library_versions() -> dict[str, str]:
    """{'python': '3.11.7', 'numpy': '2.4.6', ...}; 'not installed' for a missing library."""
    versions = {"python": platform.python_version()}
    for name in RESULT_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _release(version: str) -> tuple[str, ...]:
    """'2.14.1+cu130' -> ('2', '14'): major.minor, where behaviour changes; patch releases and local build tags
    (CPU or CUDA builds of one torch release compute the same values on CPU) do not count."""
    return tuple(version.split("+")[0].split(".")[:2])


def version_drift(recorded: dict[str, str], running: dict[str, str] | None = None,
                  affects: str | None = None) -> list[str]:
    """One warning per library whose major.minor differs between ``recorded`` (the catalogue's ``versions``) and
    ``running`` (default: this environment). ``affects``: only libraries that change "features" or the "map"."""
    running = running or library_versions()
    warnings = []
    for name, kind in RESULT_LIBRARIES.items():
        if affects is not None and kind != affects:
            continue
        built, now = recorded.get(name), running.get(name)
        if built is None or now is None or _release(built) == _release(now):
            continue
        consequence = ("fingerprints made here can differ slightly from the catalogue's" if kind == "features"
                       else "a refit map will not have the shipped layout (neighbourhoods stay, positions move)")
        warnings.append(f"{name} {now} is running, the catalogue was built with {built}: {consequence}")
    return warnings
