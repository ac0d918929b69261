// The portal's charts: each element with data-chart holds its data as JSON; Apache ECharts draws
// it with the SVG renderer (text stays text: readable, selectable, and checked by the browser tests).
(function () {
  "use strict";
  const yuan = (fen) => Math.round(fen) / 100;
  const font = '"Noto Sans CJK SC", "Noto Sans SC", "Microsoft YaHei", sans-serif';
  const options = {
    netting(rows) {
      return {
        xAxis: { type: "category", data: rows.map((r) => r.name), axisLabel: { interval: 0, rotate: 20 } },
        yAxis: { type: "value", name: "元" },
        series: [{ type: "bar", name: "净额 net", data: rows.map((r) => ({ value: yuan(r.net_fen),
          itemStyle: { color: r.net_fen < 0 ? "#b42318" : "#17803d" } })) }],
      };
    },
    advance(ledger) {
      return {
        legend: { bottom: 0, data: ["余额 balance", "应备额度 required"] },
        xAxis: { type: "category", data: ledger.map((e) => e.clearing_date + " " + e.kind) , axisLabel: { show: false } },
        yAxis: { type: "value", name: "元" },
        series: [
          { type: "line", name: "余额 balance", step: "end", data: ledger.map((e) => yuan(e.balance_fen)) },
          { type: "line", name: "应备额度 required", step: "end", lineStyle: { type: "dashed" }, data: ledger.map((e) => yuan(e.required_fen)) },
        ],
      };
    },
    risk(funds) {
      return {
        legend: { bottom: 0, data: ["已支出 spent", "进度预算 pro-rata budget"] },
        xAxis: { type: "category", data: funds.map((f) => "基金 " + f.fund_pay_type) },
        yAxis: { type: "value", name: "元" },
        series: [
          { type: "bar", name: "已支出 spent", data: funds.map((f) => ({ value: yuan(f.spent_fen),
            itemStyle: { color: f.level === "ALARM" ? "#b42318" : f.level === "WARN" ? "#b54708" : "#1b5e9b" } })) },
          { type: "bar", name: "进度预算 pro-rata budget", itemStyle: { color: "#c9d8e8" }, data: funds.map((f) => yuan(f.prorata_fen)) },
        ],
      };
    },
  };
  document.querySelectorAll("[data-chart]").forEach((el) => {
    const data = JSON.parse(el.textContent || "[]");
    el.textContent = "";
    el.style.color = "inherit";
    if (typeof echarts === "undefined") { el.textContent = "图表库未加载 the chart library did not load"; return; }
    const chart = echarts.init(el, null, { renderer: "svg" });
    chart.setOption(Object.assign({ title: { text: el.dataset.title, textStyle: { fontSize: 13, fontFamily: font } },
      textStyle: { fontFamily: font }, tooltip: { trigger: "axis" }, grid: { left: 70, right: 20, top: 50, bottom: 60 },
      animation: false }, options[el.dataset.chart](data)));
    el.dataset.rendered = "true";
    window.addEventListener("resize", () => chart.resize());
  });
})();

// A what-if run's progress: polled every second while it runs; the page reloads when it ends.
(function () {
  "use strict";
  const box = document.getElementById("what-if");
  if (!box || box.dataset.status !== "RUNNING") return;
  const tick = () => fetch(`/what-if/${box.dataset.run}/progress.json`).then((r) => r.json()).then((p) => {
    document.getElementById("what-if-progress").max = p.total || 1;
    document.getElementById("what-if-progress").value = p.done;
    document.getElementById("what-if-count").textContent = `${p.done} / ${p.total}`;
    if (p.status !== "RUNNING") window.location.reload(); else setTimeout(tick, 1000);
  }, () => setTimeout(tick, 3000));
  setTimeout(tick, 1000);
})();
