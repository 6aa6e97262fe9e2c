"""Offline resolution of a Hugging Face repository, or of a local folder, to files.

Shared by the stages that load published weights (encoders in ``features/``, pretrained
expression models in ``model/``); it imports neither, and it never downloads. A source is:

* a local folder (e.g. made with ``hf download REPO --local-dir DIR``), used as it is;
* a repository's own cache folder ``models--{org}--{name}`` (copied from a cache), resolved
  as below;
* a repository id ``org/name`` (or ``hf-hub:org/name``, or timm's
  ``hf-hub:org/name@revision``), looked up in the Hugging Face cache as ``huggingface_hub``
  lays it out: ``models--{org}--{name}/snapshots/<commit>/`` with branch names in
  ``refs/<branch>`` files holding a commit. The repository folder is matched
  case-insensitively (timm's ``hf-hub:MahmoodLab/uni`` and the Hub's ``MahmoodLab/UNI``
  are one repository, and the folders of several spellings are read as one). Without
  ``revision``, ``refs/main`` names the snapshot; a cache with no ``refs/main`` and a
  single snapshot (a pinned revision, as STAMP downloads them: ``hf_hub_download`` with a
  commit writes no ref) uses that snapshot; several unnamed snapshots are refused.

The cache folder is, as ``huggingface_hub`` resolves it: the ``cache_dir`` argument, else
``HF_HUB_CACHE``, else the legacy ``HUGGINGFACE_HUB_CACHE``, else ``$HF_HOME/hub``, else
``$XDG_CACHE_HOME/huggingface/hub``, else ``~/.cache/huggingface/hub``. The environment is
read at each call, not at import.

Missing repositories, snapshots and files raise
:class:`~he2rna_sklearn.exceptions.WeightsNotFoundError` naming the repository and the
``hf download`` command that fetches it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .exceptions import WeightsNotFoundError

__all__ = [
    "Snapshot",
    "find_file",
    "hub_cache_dir",
    "parse_repo_id",
    "read_json_object",
    "resolve_snapshot",
    "split_revision",
]

_HUB_PREFIXES = ("hf-hub:", "hf_hub:", "hf:")
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def hub_cache_dir(cache_dir=None):
    """The Hugging Face hub cache folder, resolved from the environment now.

    Parameters
    ----------
    cache_dir : str or Path, optional
        Overrides the environment.

    Returns
    -------
    Path
    """
    if cache_dir is not None:
        return Path(os.path.expandvars(os.path.expanduser(os.fspath(cache_dir))))
    env = os.environ
    explicit = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(os.path.expanduser(explicit)))
    home = env.get("HF_HOME")
    if not home:
        xdg = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        home = os.path.join(xdg, "huggingface")
    return Path(os.path.expandvars(os.path.expanduser(home))) / "hub"


def _strip_prefix(source):
    text = os.fspath(source) if isinstance(source, os.PathLike) else str(source)
    for prefix in _HUB_PREFIXES:
        if text.lower().startswith(prefix):
            return text[len(prefix) :], True
    return text, False


def parse_repo_id(source):
    """``org/name`` from ``"org/name"`` or ``"hf-hub:org/name"``; None if not a repo id."""
    text, _ = _strip_prefix(source)
    return text if _REPO_ID.match(text) else None


def split_revision(source):
    """``(org/name, revision)`` from timm's ``"hf-hub:org/name@revision"`` (revision None
    without ``@``); ``(None, None)`` if ``source`` is not a repository id.

    Examples
    --------
    >>> split_revision("hf-hub:MahmoodLab/uni@77ffbca1ee1c")
    ('MahmoodLab/uni', '77ffbca1ee1c')
    >>> split_revision("MahmoodLab/UNI")
    ('MahmoodLab/UNI', None)
    """
    text, _ = _strip_prefix(source)
    repo, sep, revision = text.partition("@")
    if not _REPO_ID.match(repo) or (sep and not revision) or "@" in revision:
        return None, None
    return repo, (revision or None)


def _cache_folder_repo(path):
    """``org/name`` if ``path`` is a repository's cache folder ``models--org--name`` (with
    ``snapshots/``), else None."""
    parts = path.name.split("--")
    if len(parts) == 3 and parts[0] == "models" and (path / "snapshots").is_dir():
        repo = f"{parts[1]}/{parts[2]}"
        return repo if _REPO_ID.match(repo) else None
    return None


def download_hint(repo_id, revision=None, *, filenames=None):
    """How to get ``repo_id`` once, on a machine with internet, for error messages."""
    rev = f" --revision {revision}" if revision else ""
    files = " " + " ".join(filenames) if filenames else ""
    return (
        f"Nothing is downloaded at run time. On a machine with internet run "
        f"`hf download {repo_id}{files}{rev}` (older huggingface_hub: `huggingface-cli "
        f"download {repo_id}{files}{rev}`) and copy the Hugging Face cache (HF_HUB_CACHE, "
        f"default ~/.cache/huggingface/hub) here, or run `hf download {repo_id}{rev} "
        f"--local-dir DIR` and pass the folder DIR instead of the repository id. A gated "
        f"repository needs its conditions accepted on https://huggingface.co/{repo_id} and "
        f"`hf auth login` first."
    )


@dataclass(frozen=True)
class Snapshot:
    """One resolved revision of a repository: a folder of files.

    Attributes
    ----------
    folder : Path
        The snapshot folder (or the local folder given).
    repo_id : str or None
        The repository id, or None for a local folder.
    revision : str or None
        The snapshot's commit (its folder name in the cache), or None for a local folder.
    """

    folder: Path
    repo_id: str | None = None
    revision: str | None = None

    @property
    def source(self):
        """``hf-hub:org/name@<commit[:12]>``, or the local folder's path: where it came from."""
        if self.repo_id is None:
            return os.fspath(self.folder)
        return f"hf-hub:{self.repo_id}@{(self.revision or '')[:12]}"

    def find(self, *filenames):
        """The first of ``filenames`` present in the snapshot, or None."""
        for name in filenames:
            path = self.folder / name
            if path.is_file():  # follows the cache's symlinks; a dangling one is missing
                return path
        return None

    def file(self, *filenames):
        """The first of ``filenames`` present, or a :class:`WeightsNotFoundError`."""
        path = self.find(*filenames)
        if path is not None:
            return path
        names = " or ".join(filenames)
        if self.repo_id is None:
            raise WeightsNotFoundError(f"'{self.folder}' has no {names}.")
        raise WeightsNotFoundError(
            f"The Hugging Face cache holds {self.repo_id} (snapshot {self.revision}) without "
            f"{names} in '{self.folder}' (an interrupted download?). "
            + download_hint(self.repo_id, filenames=list(filenames[:1]))
        )


def read_json_object(path):
    """The JSON object (a dict) in the file ``path``; a ``ValueError`` naming the file when
    it is not valid JSON or not an object (a model's ``config.json``)."""
    try:
        value = json.loads(Path(path).read_text())
    except ValueError as exc:
        raise ValueError(f"'{path}' is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"'{path}' does not hold a JSON object.")
    return value


def _repo_folders(cache, repo_id):
    """The cache folders of ``repo_id``, matched case-insensitively (the exact spelling
    first); empty if none."""
    wanted = "models--" + repo_id.replace("/", "--")
    exact = cache / wanted
    folders = [exact] if exact.is_dir() else []
    if cache.is_dir():
        folders += sorted(
            p
            for p in cache.iterdir()
            if p.is_dir() and p.name.lower() == wanted.lower() and p.name != wanted
        )
    return folders


def _refs(repo_folder):
    refs_dir = repo_folder / "refs"
    if not refs_dir.is_dir():
        return {}
    refs = {}
    for path in refs_dir.rglob("*"):
        if path.is_file() and not path.name.endswith((".tmp", ".lock")):
            refs[path.relative_to(refs_dir).as_posix()] = path.read_text().strip()
    return refs


def _snapshots(repo_folder):
    snaps = repo_folder / "snapshots"
    if not snaps.is_dir():
        return []
    return sorted(p.name for p in snaps.iterdir() if p.is_dir())


def _merged(folders, repo_id):
    """Refs and snapshots of a repository cached under one or several folders (spellings):
    ``refs`` maps a ref to its commit, ``where`` a snapshot to the folder holding it."""
    refs, where, origin = {}, {}, {}
    for folder in folders:
        for name, commit in _refs(folder).items():
            if name in refs and refs[name] != commit:
                raise WeightsNotFoundError(
                    f"The Hugging Face cache holds {repo_id} under several spellings whose "
                    f"refs/{name} differ ({origin[name].name}: {refs[name]}, {folder.name}: "
                    f"{commit}); pass revision='<commit>' (or the snapshot folder) to choose."
                )
            refs[name], origin[name] = commit, folder
        for snap in _snapshots(folder):
            where.setdefault(snap, folder)
    return refs, where


def _describe(snapshots, refs):
    named = {commit: name for name, commit in refs.items()}
    return ", ".join(s + (f" (refs/{named[s]})" if s in named else "") for s in snapshots)


def resolve_snapshot(source, *, revision=None, cache_dir=None):
    """Resolve a local folder or a repository id to a :class:`Snapshot`, offline.

    Parameters
    ----------
    source : str or Path
        A folder, a repository's cache folder (``models--org--name``), or a repository id
        ``org/name`` (``hf-hub:org/name``, ``hf-hub:org/name@revision``). An existing
        folder wins over a repository id of the same spelling.
    revision : str, optional
        A branch or tag (a ``refs/`` name), or a commit (in full, or a unique prefix of
        at least 7 characters), to pick one snapshot of a cached repository.
    cache_dir : str or Path, optional
        The hub cache (default: the environment's, see :func:`hub_cache_dir`).

    Returns
    -------
    Snapshot

    Raises
    ------
    WeightsNotFoundError
        If the repository or revision is not cached, naming the ``hf download`` command.
    FileNotFoundError
        If ``source`` looks like a path (not a repository id) and does not exist.
    ValueError
        If several snapshots are cached, none is named ``main``, and no revision is given.
    """
    path = Path(os.path.expanduser(os.fspath(source)))
    if path.is_dir():
        repo_id = _cache_folder_repo(path)
        if repo_id is not None:  # a repository's folder copied out of a cache
            return _resolve_cached([path], repo_id, revision, f"'{path}'")
        if revision is not None:
            raise ValueError(
                f"revision={revision!r} applies to a cached repository; '{path}' is a folder."
            )
        return Snapshot(path)
    repo_id, pinned = split_revision(source)
    if repo_id is None:
        if path.exists():
            raise NotADirectoryError(f"'{path}' is a file; pass the folder that holds it.")
        raise FileNotFoundError(
            f"'{source}' is neither a folder nor a Hugging Face repository id (org/name)."
        )
    if pinned is not None and revision is not None and pinned != revision:
        raise ValueError(
            f"'{source}' names revision {pinned!r} and revision={revision!r} another; give one."
        )
    revision = revision if revision is not None else pinned
    cache = hub_cache_dir(cache_dir)
    folders = _repo_folders(cache, repo_id)
    if not folders:
        raise WeightsNotFoundError(
            f"'{repo_id}' is not a folder here nor in the Hugging Face cache '{cache}'. "
            + download_hint(repo_id, revision)
        )
    return _resolve_cached(folders, repo_id, revision, f"the Hugging Face cache '{cache}'")


def _resolve_cached(folders, repo_id, revision, where):
    """The snapshot of ``repo_id`` that ``revision`` (or refs/main, or the only one) names
    among the cache folders of its spellings."""
    refs, held = _merged(folders, repo_id)
    snapshots = sorted(held)
    if not snapshots:
        raise WeightsNotFoundError(
            f"{where} holds no snapshot of {repo_id} ('{folders[0]}': an interrupted "
            "download?). " + download_hint(repo_id, revision)
        )

    def snapshot(commit):
        return Snapshot(held[commit] / "snapshots" / commit, repo_id, commit)

    if revision is not None:
        commit = refs.get(revision, revision)
        chosen = [s for s in snapshots if s == commit]
        if not chosen and len(commit) >= 7:
            chosen = [s for s in snapshots if s.startswith(commit)]
        if len(chosen) != 1:
            raise WeightsNotFoundError(
                f"Revision {revision!r} of {repo_id} is not in {where} "
                f"({'ambiguous' if chosen else 'cached'}: {_describe(snapshots, refs)}). "
                + download_hint(repo_id, revision)
            )
        return snapshot(chosen[0])
    if "main" in refs:
        commit = refs["main"]
        if commit not in held:
            raise WeightsNotFoundError(
                f"refs/main of {repo_id} names snapshot {commit}, which is not in {where} "
                f"(cached: {_describe(snapshots, refs)}); pass revision= to use a cached one. "
                + download_hint(repo_id)
            )
        return snapshot(commit)
    if len(snapshots) == 1:  # a pinned download: no branch recorded
        return snapshot(snapshots[0])
    raise ValueError(
        f"{where} holds {len(snapshots)} snapshots of {repo_id} and none is refs/main: "
        f"{_describe(snapshots, refs)}. Pick one with revision='<commit>' (the first 7 or "
        "more characters suffice)."
    )


def find_file(source, filenames, *, revision=None, cache_dir=None):
    """The first of ``filenames`` in a folder or cached repository, and an id for it.

    For weight files (e.g. an encoder's ``pytorch_model.bin``): the id, recorded in
    outputs, is ``hf-hub:<repo>@<commit[:12]>/<file>`` for a cached repository and the
    file's path for a folder.

    Returns
    -------
    path : Path
    weights_id : str

    Raises
    ------
    WeightsNotFoundError
        If the repository, revision or file is not there.
    """
    if isinstance(filenames, str):
        filenames = (filenames,)
    snapshot = resolve_snapshot(source, revision=revision, cache_dir=cache_dir)
    path = snapshot.file(*filenames)
    if snapshot.repo_id is None:
        return path, os.fspath(path)
    return path, f"{snapshot.source}/{path.name}"
