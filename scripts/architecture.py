"""Draw docs/architecture.svg, the README's picture of what `provision up` builds.

Plain SVG written by hand, so that it needs nothing beyond Python to redraw (no graphviz on the machines
this runs on). Run it after changing the picture; tests/test_docs.py fails while the committed SVG
differs from what this prints.

    python scripts/architecture.py            # rewrite docs/architecture.svg
    python scripts/architecture.py --stdout   # print it instead
"""
from __future__ import annotations

import sys
from pathlib import Path
from xml.sax.saxutils import escape

OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "architecture.svg"
WIDTH, HEIGHT = 1240, 845
FONT = "font-family=\"Helvetica, Arial, sans-serif\""

# Fill and border of each kind of box.
STYLES = {
    "region": ("#ffffff", "#232f3e"),
    "vpc": ("#f4f9f4", "#248814"),
    "public": ("#e9f5e1", "#7aa116"),
    "zone": ("#ffffff", "#8fb98a"),
    "cluster": ("#fff8ef", "#ed7100"),
    "group": ("#fdf1e2", "#d86613"),
    "service": ("#ffffff", "#d86613"),
    "connect": ("#ffffff", "#01a88d"),
    "data": ("#f3effc", "#7b3fe4"),
    "aws": ("#eef4fb", "#2e73b8"),
    "outside": ("#f7f7f7", "#545b64"),
}
# Services in the Service Connect namespace get its colour.
IN_SERVICE_CONNECT = {"history", "matching", "frontend", "worker", "ui"}


def box(x: float, y: float, w: float, h: float, lines: list[str], style: str, *, dashed: bool = False,
        title_top: bool = False, size: int = 12) -> str:
    fill, stroke = STYLES[style]
    dash = ' stroke-dasharray="6 4"' if dashed else ""
    parts = [f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" fill="{fill}" stroke="{stroke}" '
             f'stroke-width="1.5"{dash}/>']
    if title_top:
        first_y, anchor, tx = y + 17, "start", x + 8
    else:
        first_y, anchor, tx = y + h / 2 - (len(lines) - 1) * (size + 3) / 2 + size / 3, "middle", x + w / 2
    for number, line in enumerate(lines):
        weight = ' font-weight="bold"' if number == 0 else ""
        parts.append(f'<text x="{tx}" y="{first_y + number * (size + 3):.1f}" text-anchor="{anchor}" '
                     f'font-size="{size if number == 0 else size - 1}"{weight} {FONT}>{escape(line)}</text>')
    return "\n".join(parts)


def arrow(points: list[tuple[float, float]], label: str = "", *, colour: str = "#545b64",
          label_at: tuple[float, float] | None = None, both: bool = False, dashed: bool = False) -> str:
    path = " ".join(f"{x},{y}" for x, y in points)
    start = ' marker-start="url(#head)"' if both else ""
    dash = ' stroke-dasharray="5 3"' if dashed else ""
    parts = [f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.6"{dash} '
             f'marker-end="url(#head)"{start}/>']
    if label:
        lx, ly = label_at or ((points[0][0] + points[-1][0]) / 2, (points[0][1] + points[-1][1]) / 2 - 6)
        for number, line in enumerate(label.split("\n")):
            parts.append(f'<text x="{lx}" y="{ly + number * 13}" text-anchor="middle" font-size="11" '
                         f'fill="{colour}" {FONT}>{escape(line)}</text>')
    return "\n".join(parts)


def node_group(y: float, name: str, services: list[str]) -> list[str]:
    drawn = [box(300, y, 600, 88, [name, "Auto Scaling group across the three zones", "+ ECS capacity provider"],
                 "group", title_top=True)]
    for number, service in enumerate(services):
        role, _, detail = service.partition(" ")
        style = "connect" if role in IN_SERVICE_CONNECT else "service"
        drawn.append(box(560 + number * 85, y + 24, 78, 48, [role, detail or "service"], style, size=11))
    return drawn


def note(x: float, y: float, text: str, colour: str = "#545b64", anchor: str = "start") -> str:
    return (f'<text x="{x}" y="{y}" text-anchor="{anchor}" font-size="11" fill="{colour}" {FONT}>'
            f"{escape(text)}</text>")


def draw() -> str:
    items = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}">',
        '<defs><marker id="head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#545b64"/></marker></defs>',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        f'<text x="20" y="30" font-size="18" font-weight="bold" {FONT}>What provision up builds: Temporal on '
        "ECS (Graviton EC2), private-only, in one region</text>",
        box(20, 110, 160, 96, ["Your machine", "provision (boto3)", "AWS CLI +", "session-manager-plugin"], "outside"),
        note(20, 66, "provision calls the AWS APIs;"),
        note(20, 80, "state in .provision/, tags on"),
        note(20, 94, "every resource"),
        box(200, 50, 1020, 770, ["AWS region"], "region", title_top=True),
        box(220, 80, 700, 715, ["VPC (no public IPs, no 0.0.0.0/0 ingress)"], "vpc", title_top=True),
        box(640, 100, 265, 66, ["Public subnet /28", "NAT gateway + Elastic IP", "default route of the private subnets"],
            "public", size=11),
        box(700, 58, 150, 28, ["Internet gateway"], "public", size=11),
    ]
    for number, zone in enumerate("abc"):
        items.append(box(235 + number * 228, 176, 218, 380, [f"Private subnet, zone {zone}"], "zone",
                         dashed=True, title_top=True))
    items += [
        box(245, 200, 665, 345, ["ECS cluster <project>-cluster"], "cluster", title_top=True),
        box(252, 228, 38, 300, [], "connect"),
        '<text x="276" y="378" text-anchor="middle" font-size="12" font-weight="bold" fill="#01a88d" '
        f'transform="rotate(-90 276 378)" {FONT}>Service Connect</text>',
        *node_group(228, "Node A (Graviton)", ["history"]),
        *node_group(332, "Node B (Graviton)", ["matching", "frontend", "ui", "grafana"]),
        *node_group(436, "Node C (Graviton)", ["worker", "collector (ADOT)"]),
        note(245, 574, "Green: in the Service Connect namespace (temporal-history, -matching, -frontend)",
             colour="#01a88d"),
        box(245, 600, 300, 70, ["OpenSearch domain (visibility)", "in a private subnet, HTTPS, encrypted,",
                                "policy: the Temporal task role only"], "data"),
        box(565, 600, 345, 175, ["VPC endpoints, in every zone", "interface: ecr.api, ecr.dkr, logs, ssm,",
                                 "ssmmessages, ec2messages, secretsmanager,", "aps-workspaces",
                                 "optional: ecs, ecs-agent, ecs-telemetry, dsql", "gateway: s3",
                                 "(how nodes and tasks reach the AWS services)"], "aws"),
        box(245, 690, 300, 85, ["Security groups per service", "ingress only from named groups",
                                "on the exact ports; IAM roles", "per task kind under /<project>/"], "outside"),
        box(945, 90, 255, 70, ["Aurora DSQL cluster", "persistence: plugin dsql, IAM token,",
                               "through NAT or PrivateLink"], "data"),
        box(945, 190, 255, 70, ["Amazon Managed Prometheus", "workspace: remote write + query", "(SigV4)"], "data"),
        box(945, 290, 255, 52, ["Amazon ECR", "server and admin-tools images"], "aws"),
        box(945, 360, 255, 52, ["CloudWatch Logs", "one log group per service"], "aws"),
        box(945, 430, 255, 68, ["SSM Parameter Store + Secrets Manager", "collector and Grafana config,",
                                "Grafana admin secret"], "aws"),
        box(945, 530, 255, 68, ["SSM Session Manager", "port forward through a container", "instance to a task's private IP"],
            "aws"),
        # The network's way out.
        arrow([(770, 176), (770, 167)]),
        arrow([(775, 100), (775, 87)]),
        # Temporal to its stores, the metrics path.
        arrow([(900, 250), (945, 135)], colour="#7b3fe4"),
        arrow([(330, 316), (330, 600)], colour="#7b3fe4"),
        note(336, 592, "visibility (HTTPS, SigV4)", colour="#7b3fe4"),
        arrow([(723, 484), (928, 484), (928, 240), (945, 240)], colour="#7b3fe4"),
        note(922, 478, "remote write", colour="#7b3fe4", anchor="end"),
        arrow([(893, 372), (915, 372), (915, 220), (945, 220)], colour="#7b3fe4"),
        note(911, 300, "query", colour="#7b3fe4", anchor="end"),
        # Remote access.
        arrow([(100, 206), (100, 812), (1150, 812), (1150, 598)], colour="#2e73b8", dashed=True),
        note(640, 836, "provision tunnel grafana | ui  (http://localhost:3000, :8080)", colour="#2e73b8", anchor="middle"),
        arrow([(945, 570), (895, 392)], colour="#2e73b8", dashed=True),
        arrow([(180, 140), (200, 140)]),
        "</svg>",
    ]
    return "\n".join(items) + "\n"


def main() -> None:
    picture = draw()
    if "--stdout" in sys.argv[1:]:
        sys.stdout.write(picture)
        return
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(picture)
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
