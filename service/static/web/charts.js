// Line charts on uPlot, sized to their box; each chart element says in data-points how many points it shows.
"use strict";
window.charts = (function () {
  const COLORS = ["#1f5fbf", "#c0392b", "#1e8449", "#8e44ad", "#b9770e", "#117a8b", "#444444", "#d35400"];

  function color(i, alpha) {
    const hex = COLORS[i % COLORS.length];
    if (alpha === undefined) return hex;
    const n = parseInt(hex.slice(1), 16);
    return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
  }

  const NUMBER = new Intl.NumberFormat(); // what uPlot writes on a numeric axis by default
  const WHOLE_INCREMENTS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

  // The x axis; its tick values are kept in the element's data-x-ticks. With `whole`, ticks fall on whole numbers
  // only (epochs: 1, 2, 3, not 1.2, 1.4) and the scale spans whole numbers, one either side of a lone point.
  function xAxis(element, label, whole) {
    const axis = {
      label,
      values: (u, splits) => {
        element.dataset.xTicks = splits.join(",");
        return splits.map((v) => (v === null ? "" : NUMBER.format(v)));
      },
    };
    if (whole) axis.incrs = WHOLE_INCREMENTS;
    return axis;
  }

  function wholeRange(u, min, max) {
    if (min === null || max === null) return [0, 1];
    return min === max ? [min - 1, max + 1] : [Math.floor(min), Math.ceil(max)];
  }

  // series: [{label, stroke, width, points: true|false}]; options: {wholeX: true} for an axis of whole numbers.
  // Returns {plot, set(data)} where data is uPlot's table.
  function line(element, xLabel, yLabel, series, options) {
    const whole = Boolean(options && options.wholeX);
    const opts = {
      width: Math.max(element.clientWidth, 280),
      height: 240,
      scales: { x: whole ? { time: false, range: wholeRange } : { time: false } },
      axes: [xAxis(element, xLabel, whole), { label: yLabel }],
      series: [{ label: xLabel }].concat(series.map((s, i) => {
        const one = {
          label: s.label,
          stroke: s.stroke || color(i),
          width: s.width || 1.5,
          spanGaps: true,
          points: { show: s.points || false, size: 6, fill: s.stroke || color(i) },
        };
        if (s.pointsOnly) one.paths = () => null;
        return one;
      })),
    };
    const plot = new uPlot(opts, [[]].concat(series.map(() => [])), element);
    function set(data) {
      plot.setData(data);
      element.dataset.points = String(data[0].length);
    }
    new ResizeObserver(() => plot.setSize({ width: Math.max(element.clientWidth, 280), height: 240 })).observe(element);
    return { plot, set };
  }

  // TensorBoard's smoothing: an exponential moving average with the start-up bias removed.
  function smooth(values, weight) {
    if (!weight) return values.slice();
    let last = 0, count = 0;
    return values.map((v) => {
      if (v === null || !Number.isFinite(v)) return v;
      last = last * weight + (1 - weight) * v;
      count += 1;
      return last / (1 - Math.pow(weight, count));
    });
  }

  return { color, line, smooth };
})();
