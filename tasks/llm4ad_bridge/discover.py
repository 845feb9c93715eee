"""List the LLM4AD tasks this Python can run, without importing any of them.

Sources: a folder in the reference's converted format (`--root <benchmark_tasks>`, read
through its index.json) and the upstream `llm4ad` package if it is installed. Templates,
entry names and evaluator classes are read with `ast`; a task's third-party imports are
checked with `importlib.util.find_spec`, so a missing module is named, not raised. Prints
one JSON object: {"python": ..., "upstream": {"version"|"problem"}, "tasks": [...]}.
"""

import ast
import importlib.util
import json
import os
import subprocess
import sys

# What `import llm4ad` itself needs (its top-level __init__ imports these).
UPSTREAM_BASE = ["numpy", "scipy", "pytz"]
# Import names whose PyPI distribution has another name (for the `pip install` hint).
DISTRIBUTIONS = {"opto": "trace-opt", "Box2D": "box2d-py", "sklearn": "scikit-learn", "yaml": "PyYAML",
                 "cv2": "opencv-python", "PIL": "Pillow", "skimage": "scikit-image", "gym": "gym"}
# Provided by bridge.py when absent: the reference's loader imports a few OpenTrace names
# that no evaluator uses.
PROVIDED = {"opto"}
# Files of an upstream task folder that the evaluator never imports.
SIDE_SCRIPTS = {"test.py", "q-learning.py", "run_eoh.py"}


def module_strings(tree):
    """Module-level `NAME = "literal"` assignments."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                value = ast.literal_eval(node.value)
            except Exception:
                continue
            out[node.targets[0].id] = value
    return out


def imported_names(folder, local, files=None):
    """Top-level modules the folder's Python files import (absolute imports only); with
    `files`, only those files' module-level imports (the loader imports optional helpers,
    such as huggingface_hub, inside functions the evaluators never call)."""
    names = set()
    paths = files if files is not None else [os.path.join(folder, n) for n in sorted(os.listdir(folder))]
    for path in paths:
        name = os.path.basename(path)
        # Large files are data modules (instances as literals): no imports worth parsing.
        if not name.endswith(".py") or name in SIDE_SCRIPTS or not os.path.isfile(path) or os.path.getsize(path) > 256_000:
            continue
        try:
            tree = ast.parse(open(path, encoding="utf-8").read())
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in (tree.body if files is not None else ast.walk(tree)):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return sorted(n for n in names if n not in local and n not in sys.builtin_module_names)


def missing(names):
    out = []
    for n in names:
        try:
            if importlib.util.find_spec(n) is None:
                out.append(n)
        except (ImportError, ValueError):
            out.append(n)
    return out


def install(names):
    """The PyPI distributions that provide these import names."""
    return [DISTRIBUTIONS.get(n, n) for n in names]


def entry_of(template):
    try:
        for node in ast.parse(template).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return node.name
    except SyntaxError:
        pass
    return None


def execs_program(path):
    """Whether the evaluator executes the program text itself (ode_1d does)."""
    try:
        text = open(path, encoding="utf-8").read()
    except OSError:
        return False
    return "exec(program_str" in text


def local_modules(folder):
    return {n[:-3] for n in os.listdir(folder) if n.endswith(".py")} | {
        n for n in os.listdir(folder) if os.path.isdir(os.path.join(folder, n))}


def upstream():
    spec = importlib.util.find_spec("llm4ad")
    if spec is None or not spec.submodule_search_locations:
        return {"problem": "the `llm4ad` package is not installed"}, []
    package = list(spec.submodule_search_locations)[0]
    version = None
    try:
        from importlib.metadata import version as dist_version
        version = dist_version("llm4ad")
    except Exception:
        pass
    tasks = []
    base_missing = missing(UPSTREAM_BASE)
    task_root = os.path.join(package, "task")
    for family in sorted(os.listdir(task_root)):
        family_dir = os.path.join(task_root, family)
        if not os.path.isdir(family_dir) or family.startswith("_"):
            continue
        for name in sorted(os.listdir(family_dir)):
            folder = os.path.join(family_dir, name)
            template_file = os.path.join(folder, "template.py")
            if not (os.path.isfile(template_file) and os.path.isfile(os.path.join(folder, "evaluation.py"))):
                continue
            strings = module_strings(ast.parse(open(template_file, encoding="utf-8").read()))
            init = ast.parse(open(os.path.join(folder, "__init__.py"), encoding="utf-8").read())
            classes = [a.name for node in init.body if isinstance(node, ast.ImportFrom)
                       and node.module == "evaluation" for a in node.names]
            template = strings.get("template_program")
            if not isinstance(template, str) or not classes:
                continue
            needs = imported_names(folder, local_modules(folder) | {"llm4ad"})
            missing_names = sorted(set(base_missing + missing(needs)))
            tasks.append({
                "key": f"{family}/{name}",
                "source": "upstream",
                "module": f"llm4ad.task.{family}.{name}",
                "eval_class": classes[0],
                "entry": entry_of(template),
                "template": template.strip("\n") + "\n",
                "description": str(strings.get("task_description", "")).strip(),
                "missing": missing_names,
                "install": install(missing_names),
                "execs_program": execs_program(os.path.join(folder, "evaluation.py")),
            })
    return {"version": version, "path": package}, tasks


def folder_tasks(root):
    index = os.path.join(root, "index.json")
    try:
        entries = json.load(open(index, encoding="utf-8"))
    except (OSError, ValueError) as e:
        return {"problem": f"cannot read `{index}`: {e}"}, []
    loader = os.path.join(os.path.dirname(os.path.abspath(root)), "llm4ad_loader.py")
    tasks = []
    for e in entries if isinstance(entries, list) else []:
        key, module = e.get("key"), e.get("module") or e.get("wrapper")
        folder = os.path.join(root, module or "")
        init_file = os.path.join(folder, "__init__.py")
        if not key or not module or not os.path.isfile(init_file):
            continue
        strings = module_strings(ast.parse(open(init_file, encoding="utf-8").read()))
        template = strings.get("TEMPLATE_FUNCTION") or strings.get("template_program")
        if not isinstance(template, str):
            continue
        needs = set(imported_names(folder, local_modules(folder) | {"llm4ad_loader"}))
        # The loader's own imports count too (numpy); `opto` the bridge provides.
        needs |= set(imported_names(os.path.dirname(loader), set(), [loader]))
        problems = missing(sorted(needs - PROVIDED))
        if not os.path.isfile(loader):
            problems.append("llm4ad_loader")
        tasks.append({
            "key": key,
            "source": "folder",
            "root": os.path.abspath(root),
            "module": module,
            "eval_class": e.get("eval_class") or strings.get("EVAL_CLASS_NAME"),
            "entry": e.get("entry") or strings.get("ENTRY_NAME") or entry_of(template),
            "template": template.strip("\n") + "\n",
            "description": str(strings.get("TASK_DESCRIPTION") or e.get("task_description") or "").strip(),
            "missing": sorted(set(problems)),
            "install": install(sorted(set(problems) - {"llm4ad_loader"})),
            "execs_program": execs_program(init_file),
        })
    return {"path": os.path.abspath(root)}, tasks


def main():
    args = sys.argv[1:]
    root = args[args.index("--root") + 1] if "--root" in args else None
    out = {"python": sys.executable, "version": sys.version.split()[0]}
    out["upstream"], tasks = upstream()
    if root:
        out["root"], folder = folder_tasks(root)
        # A folder task wins over the upstream task of the same key (resolution order).
        keys = {t["key"] for t in folder}
        tasks = folder + [t for t in tasks if t["key"] not in keys]
    out["tasks"] = tasks
    out["confinement"] = confinement()
    print(json.dumps(out))


def confinement():
    """None when a candidate's process can be confined here (confine.py in a child),
    else why not: `validate` warns, and each verdict says so."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        code = open(os.path.join(here, "confine.py"), encoding="utf-8").read()
        probe = subprocess.run([sys.executable, "-I", "-c", code + "\nprint(repr(unconfined))"],
                               capture_output=True, text=True, timeout=30)
        reason = ast.literal_eval(probe.stdout.strip().splitlines()[-1])
    except Exception as e:
        return f"the confinement probe failed: {e}"
    return reason


if __name__ == "__main__":
    main()
