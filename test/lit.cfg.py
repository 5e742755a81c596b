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
