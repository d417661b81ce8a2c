"""Are the fhir.resources R4B models wire-compatible with FHIR R4 for what cat-prom uses?

cat-prom speaks FHIR R4 (4.0.1) and validates with the R4B (4.3.0) models of fhir.resources 8
(api/fhir/validate.py); no maintained package models R4 itself. fhir.resources 6.4.0 (pydantic 1,
2022) was generated from the R4 4.0.1 definitions; this script compares, element by element, its
model source with the installed R4B models for the resources and data types cat-prom reads and
writes: element names, cardinality (list or not, required), choice groups ([x]) and types.

    pip download fhir.resources==6.4.0 --no-deps -d /tmp/r4 && unzip -q /tmp/r4/*.whl -d /tmp/r4/src
    python benchmarks/fhir_r4_r4b.py /tmp/r4/src/fhir/resources > benchmarks/results/fhir_r4_r4b.txt
"""
from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

MODULES = ["questionnaire", "questionnaireresponse", "observation", "parameters", "operationoutcome",
           "capabilitystatement", "bundle", "coding", "codeableconcept", "quantity", "reference", "extension",
           "meta", "identifier", "element", "backboneelement", "resource", "domainresource"]


def _fields(source: str) -> dict:
    """{class: {field: (is_list, type, required, choice group)}} from a model module's source."""
    out = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        fields = {}
        for st in node.body:
            if not isinstance(st, ast.AnnAssign) or not isinstance(st.target, ast.Name):
                continue
            name = st.target.id
            if name.endswith("__ext") or name in ("resource_type",):
                continue
            ann = ast.unparse(st.annotation).replace(" | None", "").replace("typing.", "")
            is_list = ann.startswith("List[")
            typ = ann[5:-1] if is_list else ann
            typ = typ.replace("fhirtypes.", "").removesuffix("Type")
            kw = {}
            if isinstance(st.value, ast.Call):
                for k in st.value.keywords:
                    kw[k.arg] = k.value
                extra = kw.get("json_schema_extra")
                if isinstance(extra, ast.Dict):
                    for k, v in zip(extra.keys, extra.values):
                        kw[ast.literal_eval(k)] = v
            req = kw.get("element_required")
            req = bool(ast.literal_eval(req)) if req is not None else False
            group = kw.get("one_of_many")
            group = ast.literal_eval(group) if group is not None else ""
            fields[name] = (is_list, typ, req, group)
        out[node.name] = fields
    return out


def _r4b_required(mod, cls_name: str) -> set:
    cls = getattr(mod, cls_name, None)
    if cls is None or not hasattr(cls, "get_required_fields"):
        return set()
    try:
        return {a for a, _ in cls.get_required_fields(cls)}
    except Exception:
        return set()


def main(r4_dir: str) -> int:
    r4_dir = Path(r4_dir)
    n_fields = n_diff = 0
    lines = []
    for m in MODULES:
        r4 = _fields((r4_dir / f"{m}.py").read_text(encoding="utf-8"))
        mod = importlib.import_module(f"fhir.resources.R4B.{m}")
        r4b = _fields(Path(mod.__file__).read_text(encoding="utf-8"))
        for cls in sorted(set(r4) | set(r4b)):
            a, b = r4.get(cls, {}), r4b.get(cls, {})
            req_b = _r4b_required(mod, cls)
            for f in sorted(set(a) | set(b)):
                n_fields += 1
                fa, fb = a.get(f), b.get(f)
                if fa and fb:
                    fb = (fb[0], fb[1], fb[2] or f in req_b, fb[3])
                    fa = (fa[0], fa[1], fa[2], fa[3])
                if fa != fb:
                    n_diff += 1
                    lines.append(f"{cls}.{f}: R4 {fa} | R4B {fb}")
    print(f"fhir.resources R4 (6.4.0 source, FHIR 4.0.1) vs R4B ({importlib.import_module('fhir.resources').__version__}"
          f", FHIR 4.3.0): {len(MODULES)} modules, {n_fields} elements compared, {n_diff} differ")
    print("(is_list, type, required, choice group)")
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
