/* aupipe report: the zoomable AU timeline, the emotion ribbon, event bands and the AU panels.
   Everything it draws comes from the JSON in #report-data (one byte per AU sample, 0-250 = 0-5,
   255 = no face); nothing is loaded from anywhere. The overview max-pools the whole video to the
   screen's pixels; zoomed in, the samples themselves show. */
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("report-data").textContent);
  var NA = D.aus.length, SCALE = D.scale, NONE = 255, EMPTY = 254;

  function bytes(b64) {
    var s = atob(b64), out = new Uint8Array(s.length);
    for (var i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }
  /* a packed table: base64 of deflated bytes, one row after the other */
  function inflate(b64) {
    var stream = new Blob([bytes(b64)]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Response(stream).arrayBuffer().then(function (buffer) { return new Uint8Array(buffer); });
  }
  function rgb(hex) {
    return [parseInt(hex.substr(1, 2), 16), parseInt(hex.substr(3, 2), 16), parseInt(hex.substr(5, 2), 16)];
  }
  var H = D.heat, W = D.windows, heat, left, right, ribbon, fine;
  var NS = D.sided.aus.length, NL = D.ribbon.labels.length;
  var LUT = D.lut.map(rgb), LABEL_RGB = D.ribbon.colours.map(rgb);
  var END = Math.max(D.duration_ms, 1), MIN_SPAN = Math.max(10 * H.step, 300);
  var view = {t0: 0, t1: END};

  /* ms as m:ss.s (h:mm:ss from an hour on); decimals follow the tick step (2 when none is given) */
  function fmt(ms, step) {
    var digits = step === undefined ? 2 : (step < 100 ? 2 : (step < 1000 ? 1 : 0));
    var total = Math.round(Math.abs(ms) / 1000 * Math.pow(10, digits)) / Math.pow(10, digits);
    var h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), sec = total - 3600 * h - 60 * m;
    var ss = sec.toFixed(digits);
    if (sec < 10) ss = "0" + ss;
    return (ms < 0 ? "-" : "") + (h ? h + ":" + (m < 10 ? "0" : "") : "") + m + ":" + ss;
  }

  /* Max-pool the rows of a byte table (rows x grid.n samples, row after row) on [t0, t1) into
     `width` columns. Returns Uint8Array(width * rows), column-major: 255 no face, 254 no data. */
  function pool(data, grid, rows, t0, t1, width) {
    var out = new Uint8Array(width * rows), dt = (t1 - t0) / width;
    for (var c = 0; c < width; c++) {
      var a = Math.floor((t0 + c * dt - grid.t0) / grid.step), b = Math.floor((t0 + (c + 1) * dt - grid.t0) / grid.step);
      if (b <= a) b = a + 1;
      if (a < 0) a = 0;
      if (b > grid.n) b = grid.n;
      for (var r = 0; r < rows; r++) {
        var best = -1, none = false;
        for (var k = a; k < b; k++) {
          var v = data[r * grid.n + k];
          if (v === NONE) none = true; else if (v > best) best = v;
        }
        out[c * rows + r] = best >= 0 ? best : (none ? NONE : EMPTY);
      }
    }
    return out;
  }

  /* The most frequent label code of the windows in each column (EMPTY outside the windows). */
  function poolLabels(t0, t1, width) {
    var out = new Uint8Array(width), fineOut = new Uint8Array(width), dt = (t1 - t0) / width;
    var counts = new Int32Array(NL);
    for (var c = 0; c < width; c++) {
      var a = Math.floor((t0 + c * dt - W.t0) / W.step), b = Math.floor((t0 + (c + 1) * dt - W.t0) / W.step);
      if (b <= a) b = a + 1;
      if (a < 0) a = 0;
      if (b > W.n) b = W.n;
      if (b <= a) { out[c] = EMPTY; continue; }
      counts.fill(0);
      var best = 0;
      for (var k = a; k < b; k++) counts[ribbon[k]]++;
      for (var l = 1; l < NL; l++) if (counts[l] > counts[best]) best = l;
      out[c] = best;
      fineOut[c] = fine[Math.floor((a + b - 1) / 2)];
    }
    return {codes: out, fine: fineOut};
  }

  function start(arrays) {
    heat = arrays[0]; left = arrays[1]; right = arrays[2]; ribbon = arrays[3]; fine = arrays[4];
    function setup(canvas, cssHeight) {
      var dpr = window.devicePixelRatio || 1, cssWidth = Math.max(canvas.clientWidth, 50);
      canvas.width = Math.round(cssWidth * dpr);
      canvas.height = Math.round(cssHeight * dpr);
      canvas.style.height = cssHeight + "px";
      var ctx = canvas.getContext("2d");
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      return {ctx: ctx, w: cssWidth, h: cssHeight, px: canvas.width};
    }

    function paintHeat(canvas, t0, t1, rowHeight) {
      var s = setup(canvas, rowHeight * NA), width = s.px;
      var pooled = pool(heat, H, NA, t0, t1, width);
      var img = new ImageData(width, NA), px = img.data;
      for (var c = 0; c < width; c++) {
        for (var r = 0; r < NA; r++) {
          var v = pooled[c * NA + r], o = (r * width + c) * 4, col = v === EMPTY ? [250, 250, 250] : LUT[v];
          px[o] = col[0]; px[o + 1] = col[1]; px[o + 2] = col[2]; px[o + 3] = 255;
        }
      }
      var off = document.createElement("canvas");
      off.width = width; off.height = NA;
      off.getContext("2d").putImageData(img, 0, 0);
      s.ctx.imageSmoothingEnabled = false;
      s.ctx.drawImage(off, 0, 0, width, NA, 0, 0, s.w, s.h);
      s.ctx.strokeStyle = "rgba(255,255,255,0.55)";
      s.ctx.lineWidth = 1;
      for (var g = 1; g < NA; g++) {
        s.ctx.beginPath(); s.ctx.moveTo(0, g * rowHeight + 0.5); s.ctx.lineTo(s.w, g * rowHeight + 0.5); s.ctx.stroke();
      }
      return {pooled: pooled, width: width};
    }

    function paintRibbon(canvas, t0, t1, height) {
      var s = setup(canvas, height), width = s.px, labels = poolLabels(t0, t1, width);
      var img = new ImageData(width, 1), px = img.data;
      for (var c = 0; c < width; c++) {
        var code = labels.codes[c], col = code === EMPTY ? [250, 250, 250] : LABEL_RGB[code];
        px[c * 4] = col[0]; px[c * 4 + 1] = col[1]; px[c * 4 + 2] = col[2]; px[c * 4 + 3] = 255;
      }
      var off = document.createElement("canvas");
      off.width = width; off.height = 1;
      off.getContext("2d").putImageData(img, 0, 0);
      s.ctx.imageSmoothingEnabled = false;
      s.ctx.drawImage(off, 0, 0, width, 1, 0, 0, s.w, s.h);
      s.ctx.strokeStyle = "#b9b9b9";
      s.ctx.strokeRect(0.5, 0.5, s.w - 1, s.h - 1);
      return labels;
    }

    function niceStep(span, pixels) {
      var steps = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 15000, 30000, 60000, 120000, 300000, 600000,
        900000, 1800000, 3600000, 7200000];
      var want = span / Math.max(pixels / 90, 2);
      for (var i = 0; i < steps.length; i++) if (steps[i] >= want) return steps[i];
      return steps[steps.length - 1];
    }

    function paintAxis(canvas, t0, t1) {
      var s = setup(canvas, 22), ctx = s.ctx, step = niceStep(t1 - t0, s.w);
      ctx.fillStyle = "#444"; ctx.strokeStyle = "#888"; ctx.font = "11px system-ui, sans-serif"; ctx.textAlign = "center";
      for (var t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
        var x = (t - t0) / (t1 - t0) * s.w;
        ctx.beginPath(); ctx.moveTo(x + 0.5, 0); ctx.lineTo(x + 0.5, 5); ctx.stroke();
        if (x > 16 && x < s.w - 16) ctx.fillText(fmt(t, step), x, 17);
      }
    }

    /* ---- the timeline ------------------------------------------------------------------------ */
    var el = {
      detail: document.getElementById("tl-heat"), ribbon: document.getElementById("tl-ribbon"),
      axis: document.getElementById("tl-axis"), overview: document.getElementById("tl-overview"),
      brush: document.getElementById("tl-brush"), bands: document.getElementById("tl-bands"),
      tip: document.getElementById("tl-tip"), range: document.getElementById("tl-range"),
      stage: document.getElementById("tl-stage"), labels: document.getElementById("tl-labels")
    };
    var ROW = 14, RIBBON = 16, last = null, frame = 0, overviewDone = false;

    function clampView(t0, t1) {
      var span = Math.min(Math.max(t1 - t0, MIN_SPAN), END);
      if (t0 < 0) t0 = 0;
      if (t0 + span > END) t0 = END - span;
      view.t0 = Math.max(t0, 0); view.t1 = view.t0 + span;
      schedule();
    }
    function zoom(factor, at) {
      var span = view.t1 - view.t0, centre = at === undefined ? (view.t0 + view.t1) / 2 : at;
      var share = (centre - view.t0) / span, next = span * factor;
      clampView(centre - share * next, centre - share * next + next);
    }
    function schedule() {
      if (!frame) frame = window.requestAnimationFrame(function () { frame = 0; draw(); });
    }

    function placeBands() {
      var span = view.t1 - view.t0, nodes = el.bands.children;
      for (var i = 0; i < nodes.length; i++) {
        var n = nodes[i], a = +n.getAttribute("data-onset"), b = +n.getAttribute("data-offset");
        if (b < view.t0 || a > view.t1) { n.style.display = "none"; continue; }
        n.style.display = "";
        n.style.left = ((a - view.t0) / span * 100) + "%";
        n.style.width = "max(3px, " + ((b - a) / span * 100) + "%)";
      }
    }

    function drawOverview() {
      var s = setup(el.overview, 40), pooled = pool(heat, H, NA, 0, END, s.px);
      var img = new ImageData(s.px, NA), px = img.data;
      for (var c = 0; c < s.px; c++) for (var r = 0; r < NA; r++) {
        var v = pooled[c * NA + r], o = (r * s.px + c) * 4, col = v === EMPTY ? [250, 250, 250] : LUT[v];
        px[o] = col[0]; px[o + 1] = col[1]; px[o + 2] = col[2]; px[o + 3] = 255;
      }
      var off = document.createElement("canvas");
      off.width = s.px; off.height = NA;
      off.getContext("2d").putImageData(img, 0, 0);
      s.ctx.drawImage(off, 0, 0, s.px, NA, 0, 0, s.w, 30);
      var labels = poolLabels(0, END, s.px);
      for (var k = 0; k < s.px; k++) {
        var code = labels.codes[k];
        s.ctx.fillStyle = code === EMPTY ? "#fafafa" : D.ribbon.colours[code];
        s.ctx.fillRect(k * s.w / s.px, 31, s.w / s.px + 0.5, 9);
      }
      D.events.forEach(function (e) {
        s.ctx.fillStyle = e.kind === "micro" ? "#0a84ff" : "#11a36a";
        s.ctx.fillRect(e.onset / END * s.w, 0, Math.max((e.offset - e.onset) / END * s.w, 1.5), 3);
      });
      overviewDone = true;
    }

    function draw() {
      if (!overviewDone) drawOverview();
      last = paintHeat(el.detail, view.t0, view.t1, ROW);
      last.labels = paintRibbon(el.ribbon, view.t0, view.t1, RIBBON);
      paintAxis(el.axis, view.t0, view.t1);
      el.brush.style.left = (view.t0 / END * 100) + "%";
      el.brush.style.width = "max(3px, " + ((view.t1 - view.t0) / END * 100) + "%)";
      el.range.textContent = fmt(view.t0) + " – " + fmt(view.t1) + "  (" + fmt(view.t1 - view.t0) + " shown)";
      placeBands();
      drawPanels();
      document.body.setAttribute("data-ready", "1");
    }

    function timeAt(evt, node) {
      var box = node.getBoundingClientRect();
      return {t: view.t0 + (evt.clientX - box.left) / box.width * (view.t1 - view.t0), x: evt.clientX - box.left,
        y: evt.clientY - box.top, w: box.width};
    }

    var drag = null;
    el.stage.addEventListener("wheel", function (evt) {
      evt.preventDefault();
      zoom(Math.pow(1.0015, evt.deltaY), timeAt(evt, el.detail).t);
    }, {passive: false});
    el.stage.addEventListener("mousedown", function (evt) {
      if (evt.target.classList.contains("band")) return;
      drag = {x: evt.clientX, t0: view.t0, t1: view.t1, w: el.detail.getBoundingClientRect().width};
      evt.preventDefault();
    });
    el.stage.addEventListener("dblclick", function (evt) { zoom(0.5, timeAt(evt, el.detail).t); });
    window.addEventListener("mousemove", function (evt) {
      if (drag) {
        var shift = (evt.clientX - drag.x) / drag.w * (drag.t1 - drag.t0);
        clampView(drag.t0 - shift, drag.t1 - shift);
      }
    });
    window.addEventListener("mouseup", function () { drag = null; overviewDrag = false; });

    el.detail.addEventListener("mousemove", function (evt) {
      if (!last) return;
      var p = timeAt(evt, el.detail), row = Math.min(NA - 1, Math.max(0, Math.floor(p.y / ROW)));
      var col = Math.min(last.width - 1, Math.max(0, Math.floor(p.x / p.w * last.width)));
      var v = last.pooled[col * NA + row], label = last.labels.codes[col];
      var text = fmt(p.t) + " · " + D.aus[row] + " " + D.names[D.aus[row]] + ": " +
        (v === NONE ? "no face" : v === EMPTY ? "–" : (v / SCALE).toFixed(1)) +
        (label === EMPTY ? "" : " · " + D.ribbon.fine_labels[last.labels.fine[col]] + " (" + D.ribbon.labels[label] + ")");
      el.tip.textContent = text;
      el.tip.hidden = false;
    });
    el.detail.addEventListener("mouseleave", function () { el.tip.hidden = true; });

    var overviewDrag = false;
    function overviewJump(evt) {
      var box = el.overview.getBoundingClientRect(), t = (evt.clientX - box.left) / box.width * END, span = view.t1 - view.t0;
      clampView(t - span / 2, t + span / 2);
    }
    el.overview.parentNode.addEventListener("mousedown", function (evt) { overviewDrag = true; overviewJump(evt); evt.preventDefault(); });
    window.addEventListener("mousemove", function (evt) { if (overviewDrag) overviewJump(evt); });

    function button(id, action) {
      var node = document.getElementById(id);
      if (node) node.addEventListener("click", action);
    }
    button("tl-all", function () { clampView(0, END); });
    button("tl-in", function () { zoom(0.5); });
    button("tl-out", function () { zoom(2); });
    button("tl-left", function () { var s = view.t1 - view.t0; clampView(view.t0 - s * 0.5, view.t1 - s * 0.5); });
    button("tl-right", function () { var s = view.t1 - view.t0; clampView(view.t0 + s * 0.5, view.t1 + s * 0.5); });
    document.getElementById("timeline").addEventListener("keydown", function (evt) {
      var keys = {"+": function () { zoom(0.5); }, "=": function () { zoom(0.5); }, "-": function () { zoom(2); },
        "ArrowLeft": function () { var s = view.t1 - view.t0; clampView(view.t0 - s * 0.25, view.t1 - s * 0.25); },
        "ArrowRight": function () { var s = view.t1 - view.t0; clampView(view.t0 + s * 0.25, view.t1 + s * 0.25); },
        "0": function () { clampView(0, END); }};
      if (keys[evt.key]) { keys[evt.key](); evt.preventDefault(); }
    });

    /* event bands over the heat map; a click opens the event's card */
    D.events.forEach(function (e) {
      var band = document.createElement("a");
      band.className = "band " + e.kind;
      band.href = "#event-" + e.id;
      band.setAttribute("data-event", e.id);
      band.setAttribute("data-onset", e.onset);
      band.setAttribute("data-offset", e.offset);
      band.title = "event " + e.id + " · " + e.kind + " · " + fmt(e.onset) + "–" + fmt(e.offset) + " · " +
        e.aus + (e.label ? " · " + e.label : "");
      el.bands.appendChild(band);
    });
    document.querySelectorAll("[data-goto]").forEach(function (node) {
      node.addEventListener("click", function (evt) {
        evt.preventDefault();
        var a = +node.getAttribute("data-onset"), b = +node.getAttribute("data-offset"), pad = Math.max(1500, (b - a));
        clampView(a - pad, b + pad);
        document.getElementById("timeline").scrollIntoView({behavior: "smooth"});
      });
    });

    /* row labels of the heat map */
    D.aus.forEach(function (au) {
      var span = document.createElement("span");
      span.textContent = au;
      span.title = D.names[au];
      el.labels.appendChild(span);
    });

    /* ---- AU panels: each AU's time course in the timeline's view ------------------------------ */
    var panels = Array.prototype.slice.call(document.querySelectorAll("canvas.spark"));
    function drawPanels() {
      if (!panels.length) return;
      var t0 = view.t0, t1 = view.t1, width = Math.max(panels[0].clientWidth, 50);
      var pooledHeat = pool(heat, H, NA, t0, t1, width);
      var pooledLeft = NS ? pool(left, W, NS, t0, t1, width) : null, pooledRight = NS ? pool(right, W, NS, t0, t1, width) : null;
      panels.forEach(function (canvas) {
        var row = D.aus.indexOf(canvas.getAttribute("data-au")), side = D.sided.aus.indexOf(canvas.getAttribute("data-au"));
        var s = setup(canvas, 48), ctx = s.ctx, y = function (v) { return s.h - 2 - v / (5 * SCALE) * (s.h - 4); };
        ctx.fillStyle = "#fbfbfb"; ctx.fillRect(0, 0, s.w, s.h);
        ctx.strokeStyle = "#e4e4e4"; ctx.beginPath(); ctx.moveTo(0, y(SCALE) + 0.5); ctx.lineTo(s.w, y(SCALE) + 0.5); ctx.stroke();
        function line(values, rows, r, colour, fill) {
          ctx.beginPath();
          var open = false;
          for (var c = 0; c < width; c++) {
            var v = values[c * rows + r];
            if (v >= EMPTY) { open = false; continue; }
            var x = (c + 0.5) * s.w / width;
            if (open) ctx.lineTo(x, y(v)); else { ctx.moveTo(x, y(v)); open = true; }
          }
          ctx.strokeStyle = colour; ctx.lineWidth = fill ? 1.4 : 1; ctx.stroke();
        }
        if (side >= 0) {
          line(pooledLeft, NS, side, "rgba(10,132,255,0.8)", false);
          line(pooledRight, NS, side, "rgba(230,120,0,0.8)", false);
        }
        line(pooledHeat, NA, row, "#2b2b2b", true);
        ctx.fillStyle = "#9a9a9a"; ctx.font = "9px sans-serif"; ctx.textAlign = "left";
        ctx.fillText("5", 2, 9); ctx.fillText("A", 2, y(SCALE) - 2);
      });
    }

    window.addEventListener("resize", function () { overviewDone = false; schedule(); });
    document.body.setAttribute("data-bands", String(D.events.length));
    /* report.html#t=12.5-20 opens the timeline on 12.5-20 s */
    var asked = /^#t=([\d.]+)-([\d.]+)$/.exec(window.location.hash);
    if (asked && +asked[2] > +asked[1]) { view.t0 = +asked[1] * 1000; view.t1 = +asked[2] * 1000; clampView(view.t0, view.t1); }
    draw();
  }

  if (typeof DecompressionStream === "undefined") {
    document.getElementById("tl-range").textContent = "This browser cannot unpack the timeline (it needs DecompressionStream: " +
      "Chrome 80, Firefox 113, Safari 16.4 or later).";
    return;
  }
  Promise.all([D.heat.data, D.sided.left, D.sided.right, D.ribbon.codes, D.ribbon.fine].map(inflate))
    .then(start)
    .catch(function (err) { console.error("aupipe report: the timeline could not be drawn: " + err); });
})();
