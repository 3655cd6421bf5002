"""The machine a benchmark ran on, as every recorded timing names it: the CPU's model name with its
family and model numbers (several CPU generations share one model name) and the ISA flags that
decide Loom's kernels."""
import os
import platform
import subprocess

ISA_FLAGS = ["avx2", "avx512f", "avx512_bf16", "amx_bf16"]


def _cpu_fields():
    """(model name, family, model, flags) from /proc/cpuinfo, else from `lscpu`."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu family", "model", "flags", "Features") and key not in fields:
                    fields[key] = value.strip()
    except OSError:
        pass
    if "model name" not in fields or not ("flags" in fields or "Features" in fields):
        try:
            out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        except OSError:
            out = ""
        names = {"Model name": "model name", "CPU family": "cpu family", "Model": "model", "Flags": "flags"}
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in names:
                fields.setdefault(names[key.strip()], value.strip())
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    return fields.get("model name"), fields.get("cpu family"), fields.get("model"), flags


def machine_info():
    """{"cpu": "NAME (family F model M)", "arch", "cores", "isa": the ISA_FLAGS present}."""
    name, family, model, flags = _cpu_fields()
    cpu = name or platform.processor() or platform.machine()
    if family and model:
        cpu += f" (family {family} model {model})"
    return {"cpu": cpu, "arch": platform.machine(), "cores": os.cpu_count(),
            "isa": [flag for flag in ISA_FLAGS if flag in flags]}
