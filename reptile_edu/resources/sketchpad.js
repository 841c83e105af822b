// The drawing canvas of reptile_edu.sketchpad.SketchPad (anywidget): strokes drawn with a mouse, pen or finger are
// sent to Python as lists of [x, y] canvas pixels when each stroke ends; strokes set from Python are drawn here.
function points(stroke) {
  // only well-formed points are drawn: Python reports a malformed drawing, the canvas just skips it
  return Array.isArray(stroke) ? stroke.filter(p => Array.isArray(p) && p.length === 2 && p.every(Number.isFinite)) : [];
}

function render({ model, el }) {
  const box = document.createElement("div");
  box.className = "reptile-sketchpad";
  const label = document.createElement("div");
  label.className = "reptile-sketchpad-label";
  const canvas = document.createElement("canvas");
  const clear = document.createElement("button");
  clear.className = "reptile-sketchpad-clear";
  clear.textContent = "clear";
  clear.title = "erase this drawing";
  const ctx = canvas.getContext("2d");
  let current = null; // the stroke being drawn, not yet sent

  function resize() {
    const size = model.get("size"), ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(size * ratio);
    canvas.height = Math.round(size * ratio);
    canvas.style.width = canvas.style.height = `${size}px`;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    draw();
  }

  function draw() {
    const size = model.get("size"), strokes = model.get("strokes");
    ctx.clearRect(0, 0, size, size);
    ctx.lineWidth = Math.max(2, size / 35);
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.strokeStyle = ctx.fillStyle = "#111";
    for (const stroke of [...(Array.isArray(strokes) ? strokes : []), ...(current ? [current] : [])]) {
      const pts = points(stroke);
      if (pts.length === 1) {
        ctx.beginPath();
        ctx.arc(pts[0][0], pts[0][1], ctx.lineWidth / 2, 0, 2 * Math.PI);
        ctx.fill();
      } else if (pts.length > 1) {
        ctx.beginPath();
        pts.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
        ctx.stroke();
      }
    }
    label.textContent = model.get("label");
  }

  function at(event) {
    const r = canvas.getBoundingClientRect(), size = model.get("size"); // inside the border: canvas pixels
    const x = ((event.clientX - r.left - canvas.clientLeft) * size) / canvas.clientWidth;
    const y = ((event.clientY - r.top - canvas.clientTop) * size) / canvas.clientHeight;
    return [Math.round(x * 10) / 10, Math.round(y * 10) / 10];
  }

  canvas.addEventListener("pointerdown", event => {
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    current = [at(event)];
    draw();
  });
  canvas.addEventListener("pointermove", event => {
    if (!current) return;
    const p = at(event), q = current[current.length - 1];
    if (Math.hypot(p[0] - q[0], p[1] - q[1]) >= 1) {
      current.push(p);
      draw();
    }
  });
  const finish = () => {
    if (!current) return;
    const strokes = model.get("strokes");
    model.set("strokes", [...(Array.isArray(strokes) ? strokes : []), current]);
    current = null;
    model.save_changes();
  };
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);
  clear.addEventListener("click", () => {
    current = null;
    model.set("strokes", []);
    model.save_changes();
  });
  model.on("change:strokes", draw);
  model.on("change:label", draw);
  model.on("change:size", resize);
  box.append(label, canvas, clear);
  el.appendChild(box);
  resize();
  return () => {
    model.off("change:strokes", draw);
    model.off("change:label", draw);
    model.off("change:size", resize);
  };
}

export default { render };
