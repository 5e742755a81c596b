# lit configuration of kvopt's dialect, pass and importer tests.
import os

import lit.formats

config.name = "kvopt"
config.test_format = lit.formats.ShTest(True)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.kvopt_obj_root, "test")
config.excludes = ["lit.cfg.py", "lit.site.cfg.py.in", "CMakeLists.txt",
                   "unit", "Inputs", "fuzz"]

config.environment["PATH"] = os.pathsep.join(
    [config.kvopt_tools_dir, config.llvm_tools_dir,
     config.environment.get("PATH", os.environ.get("PATH", ""))])
config.substitutions.append(("%python", config.python_executable))
config.substitutions.append(("%models", config.test_models_dir))
config.substitutions.append(("%src", config.kvopt_src_root))

# The embedded default model, where scripts/fetch-default-model.sh puts it.
data_dir = os.environ.get("KVOPT_DATA_DIR") or os.path.join(
    os.environ.get("XDG_DATA_HOME") or
    os.path.join(os.path.expanduser("~"), ".local", "share"), "kvopt")
config.substitutions.append(
    ("%default_model",
     os.path.join(data_dir, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")))
for name in ("KVOPT_DATA_DIR", "XDG_DATA_HOME", "HOME"):
    if name in os.environ:
        config.environment[name] = os.environ[name]
