"""Helpers that lay out a package's files in a staging tree, with explicit modes.

Modes never come from the builder's umask or checkout: files are 0644, executables 0755,
directories 0755.
"""
import os
import shutil

SKIP_NAMES = {"__pycache__", ".pytest_cache", ".mypy_cache"}


def path_in(stage, installed_path):
    """The staging path of an installed absolute path."""
    return os.path.join(stage, installed_path.lstrip("/"))


def put_file(stage, installed_path, src=None, text=None, mode=0o644):
    """Stage one file from `src` or `text` at `installed_path`."""
    dest = path_in(stage, installed_path)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if src is not None:
        shutil.copyfile(src, dest)
    else:
        with open(dest, "w") as f:
            f.write(text)
    os.chmod(dest, mode)
    return dest


def copy_tree(src, stage, installed_dir, keep=None):
    """Copy a source tree (minus caches, bytecode and dotfiles) to `installed_dir`.

    Executable files stay 0755, others become 0644. `keep(relpath)` may filter files.
    """
    count = 0
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_NAMES and not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or name.endswith((".pyc", ".pyo")):
                continue
            full = os.path.join(root, name)
            rel = os.path.relpath(full, src)
            if keep is not None and not keep(rel):
                continue
            mode = 0o755 if os.access(full, os.X_OK) else 0o644
            put_file(stage, os.path.join(installed_dir, rel), src=full, mode=mode)
            count += 1
    return count


def normalize_modes(top):
    """Directories 0755; files 0755 when anyone may execute them, else 0644."""
    for root, dirs, files in os.walk(top):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                os.chmod(p, 0o755 if os.stat(p).st_mode & 0o111 else 0o644)
    os.chmod(top, 0o755)


def files_under(stage):
    """Every staged file, as installed absolute paths, sorted."""
    out = []
    for root, _dirs, files in os.walk(stage):
        for f in files:
            out.append("/" + os.path.relpath(os.path.join(root, f), stage))
    return sorted(out)


def size_of(stage):
    """Total bytes of the staged files."""
    total = 0
    for root, _dirs, files in os.walk(stage):
        for f in files:
            total += os.lstat(os.path.join(root, f)).st_size
    return total
