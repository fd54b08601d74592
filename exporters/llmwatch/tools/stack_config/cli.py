"""``llmwatch stack-config --out DIR``: write what Prometheus and Alertmanager need (see __init__)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import yaml

from llmwatch.tools.stack_config import render

DEFAULT_ALERTMANAGER = Path(__file__).resolve().parents[4] / "config" / "alertmanager"


def write(path: Path, text: str) -> None:
    """Replace a file atomically (Prometheus watches the target files) and readable by every user
    (Prometheus and Alertmanager run as nobody; the volume itself is private to root)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmwatch stack-config", description=__doc__)
    parser.add_argument("--out", type=Path, required=True,
                        help="directory receiving prometheus/ and alertmanager/")
    parser.add_argument("--alertmanager-dir", type=Path, default=DEFAULT_ALERTMANAGER,
                        help="directory holding alertmanager.yml and templates/ (default: the repository's)")
    args = parser.parse_args(argv)

    try:
        env = render.load_env(dict(os.environ))
        base = yaml.safe_load((args.alertmanager_dir / "alertmanager.yml").read_text())
        alertmanager = render.alertmanager_config(base, env)
    except render.StackConfigError as e:
        for problem in e.problems:
            print(f"llmwatch stack-config: {problem}", file=sys.stderr)
        return 2
    except (OSError, yaml.YAMLError) as e:
        print(f"llmwatch stack-config: cannot read {args.alertmanager_dir / 'alertmanager.yml'}: {e}", file=sys.stderr)
        return 2

    prometheus_dir = args.out / "prometheus"
    write(prometheus_dir / "web.yml", render.prometheus_web_config(env))
    write(prometheus_dir / "prometheus_password", env.prometheus_password + "\n")
    write(prometheus_dir / "litellm_master_key", env.litellm_master_key + "\n")
    for name, targets in render.prometheus_targets(env).items():
        write(prometheus_dir / "targets" / name, render.dump_json(targets))
    # a demo that was killed without cleaning up leaves its targets: the demo writes them anew
    for stale in (prometheus_dir / "targets").glob(f"*{render.DEMO_SUFFIX}"):
        stale.unlink()

    alertmanager_dir = args.out / "alertmanager"
    write(alertmanager_dir / "alertmanager.yml", yaml.safe_dump(alertmanager, sort_keys=False))
    templates = alertmanager_dir / "templates"
    templates.mkdir(parents=True, exist_ok=True)
    for template in sorted((args.alertmanager_dir / "templates").glob("*.tmpl")):
        shutil.copyfile(template, templates / template.name)
        (templates / template.name).chmod(0o644)

    enabled = sorted(render.EXPORTER_PROFILES[p][0] for p in env.profiles if p in render.EXPORTER_PROFILES)
    print(f"llmwatch stack-config: scraping {', '.join(enabled) or 'no llmwatch exporters'}"
          f"{' and LiteLLM /metrics' if 'litellm' in env.profiles else ''}")
    for receiver, integrations in render.enabled_integrations(alertmanager).items():
        print(f"llmwatch stack-config: receiver {receiver}: {', '.join(integrations) or 'off (nothing configured)'}")
    return 0


