// powermeter day chart: tooltip with every series' value, drag / pinch to
// zoom (by address: ?from=&to=, so the server draws the range), legend
// toggles and today's chart refreshing itself. The chart is drawn by the
// server; without this script it is a still picture with a range form.
(function () {
  'use strict';
  var fig = document.getElementById('chart');
  if (!fig) return;
  var data = null, loading = null, hidden = {};

  function plot() { return document.getElementById('day-chart'); }

  function load() {
    if (data) return Promise.resolve(data);
    if (!loading) {
      loading = fetch(fig.getAttribute('data-src'), { credentials: 'same-origin' })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(function (d) { data = d; prep(d); return d; })
        .catch(function () { loading = null; return null; });
    }
    return loading;
  }

  var fmtTime, fmtHM, nums = {};
  function prep(d) {
    // t comes as differences (they compress well)
    for (var i = 1; i < d.t.length; i++) d.t[i] += d.t[i - 1];
    var o = { timeZone: d.zone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
    fmtHM = new Intl.DateTimeFormat(d.lang, o);
    if (!d.res) o.second = '2-digit';
    fmtTime = new Intl.DateTimeFormat(d.lang, o);
  }
  function num(v, dec) {
    var f = nums[dec] || (nums[dec] = new Intl.NumberFormat(data.lang, { minimumFractionDigits: dec, maximumFractionDigits: dec }));
    return f.format(v).replace('-', '\u2212');
  }

  // nearest row to ms
  function nearest(ms) {
    var t = data.t, s = (ms - data.t0) / 1000, lo = 0, hi = t.length - 1;
    if (hi < 0) return -1;
    if (data.res) s -= data.res / 2; // rows are bucket starts
    while (hi - lo > 1) {
      var mid = (lo + hi) >> 1;
      if (t[mid] <= s) lo = mid; else hi = mid;
    }
    return Math.abs(t[hi] - s) < Math.abs(t[lo] - s) ? hi : lo;
  }

  var tip, cursor, sel;
  function el(cls) {
    var e = document.createElement('div');
    e.className = cls;
    e.hidden = true;
    plot().appendChild(e);
    return e;
  }
  function ensure() {
    if (!tip || !plot().contains(tip)) {
      tip = el('tip'); tip.id = 'chart-tip';
      cursor = el('cursor'); sel = el('zoomsel');
    }
  }

  function msAt(clientX) {
    var r = plot().getBoundingClientRect();
    var f = Math.min(Math.max((clientX - r.left) / r.width, 0), 1);
    return { f: f, ms: data.t0 + f * (data.t1 - data.t0) };
  }

  function show(clientX) {
    load().then(function (d) {
      if (!d || !d.t.length) return;
      ensure();
      var at = msAt(clientX), i = nearest(at.ms);
      if (i < 0) return;
      var ms = d.t0 + d.t[i] * 1000;
      if (d.res) ms += 0; // bucket start
      var f = (ms - d.t0) / (d.t1 - d.t0);
      if (d.res) f += d.res * 500 / (d.t1 - d.t0);
      cursor.style.left = (f * 100) + '%';
      cursor.hidden = false;
      var rows = [], head = document.createElement('div');
      head.className = 'tt';
      head.textContent = fmtTime.format(new Date(ms)) + (d.res ? ' +' + (d.res / 60) + ' min' : '');
      rows.push(head);
      d.s.forEach(function (s) {
        if (hidden[s.k] || s.v[i] === null || s.v[i] === undefined) return;
        var r = document.createElement('div');
        r.setAttribute('data-s', s.k);
        var k = document.createElement('span'); k.textContent = s.l;
        var v = document.createElement('b'); v.textContent = num(s.v[i], s.d) + '\u202f' + s.u;
        r.appendChild(k); r.appendChild(v);
        rows.push(r);
      });
      tip.replaceChildren.apply(tip, rows);
      tip.hidden = false;
      tip.classList.toggle('left', f > 0.6);
      tip.style.left = (f * 100) + '%';
    });
  }
  function hide() { if (tip) { tip.hidden = true; cursor.hidden = true; } }

  // zoom: the address of a range of the current view
  function hm(ms, up) {
    var m = 60000;
    ms = up ? Math.ceil(ms / m) * m : Math.floor(ms / m) * m;
    if (up && ms >= data.t1 && fig.getAttribute('data-end-of-day') !== 'no') {
      // the view's end: keep it (24:00 on a full day)
      var to = new URL(location.href).searchParams.get('to');
      if (!to || to === '24:00') return '24:00';
    }
    return fmtHM.format(new Date(ms));
  }
  function zoomTo(a, b) {
    if (b - a < 10 * 60000) { var mid = (a + b) / 2; a = mid - 5 * 60000; b = mid + 5 * 60000; }
    a = Math.max(a, data.t0); b = Math.min(b, data.t1);
    var u = new URL(location.href);
    u.searchParams.set('from', hm(a, false));
    u.searchParams.set('to', hm(b, true));
    location.assign(u.toString());
  }

  var drag = null;
  function bind() {
    var p = plot();
    if (!p || p.getAttribute('data-bound')) return;
    p.setAttribute('data-bound', '1');
    p.addEventListener('pointermove', function (e) {
      if (e.pointerType === 'touch' && pinch) return;
      show(e.clientX);
      if (drag && data) {
        var r = p.getBoundingClientRect();
        var x0 = Math.min(drag.x, e.clientX) - r.left, x1 = Math.max(drag.x, e.clientX) - r.left;
        sel.style.left = Math.max(x0, 0) + 'px';
        sel.style.width = Math.min(x1, r.width) - Math.max(x0, 0) + 'px';
        sel.hidden = x1 - x0 < 4;
      }
    });
    p.addEventListener('pointerleave', function () { if (!drag) hide(); });
    p.addEventListener('pointerdown', function (e) {
      load();
      if (e.pointerType === 'mouse' && e.button === 0) {
        drag = { x: e.clientX };
        ensure();
        e.preventDefault();
      } else {
        show(e.clientX);
      }
    });
    window.addEventListener('pointerup', function (e) {
      if (!drag) return;
      var x0 = drag.x;
      drag = null;
      if (sel) sel.hidden = true;
      if (!data || Math.abs(e.clientX - x0) < 8) return;
      var a = msAt(Math.min(x0, e.clientX)).ms, b = msAt(Math.max(x0, e.clientX)).ms;
      zoomTo(a, b);
    });
    // pinch: the instants under the two fingers at the start end up under
    // them at the end
    var pinch = null;
    p.addEventListener('touchstart', function (e) {
      if (e.touches.length === 2 && data) {
        var a = msAt(e.touches[0].clientX), b = msAt(e.touches[1].clientX);
        pinch = { fa: a.f, fb: b.f, ma: a.ms, mb: b.ms, last: null };
        hide();
      }
    }, { passive: true });
    p.addEventListener('touchmove', function (e) {
      if (!pinch || e.touches.length !== 2) return;
      e.preventDefault();
      pinch.last = [msAt(e.touches[0].clientX).f, msAt(e.touches[1].clientX).f];
    }, { passive: false });
    p.addEventListener('touchend', function () {
      if (!pinch) return;
      var q = pinch;
      pinch = null;
      if (!q.last) return;
      var df = Math.abs(q.last[1] - q.last[0]);
      if (df < 0.02 || Math.abs(q.fb - q.fa) < 0.02) return;
      var msPerF = Math.abs(q.mb - q.ma) / df;
      var a = q.ma - Math.min(q.last[0], q.last[1]) * msPerF;
      if (q.last[0] > q.last[1]) a = q.mb - q.last[1] * msPerF;
      zoomTo(a, a + msPerF);
    });
  }

  // legend: a series on or off
  function applyHidden() {
    Object.keys(hidden).forEach(function (k) {
      document.querySelectorAll('#day-chart [data-s]').forEach(function (n) {
        if (n.getAttribute('data-s') === k) n.style.display = hidden[k] ? 'none' : '';
      });
      document.querySelectorAll('#legend .lg').forEach(function (b) {
        if (b.getAttribute('data-s') === k) b.setAttribute('aria-pressed', hidden[k] ? 'false' : 'true');
      });
    });
  }
  fig.addEventListener('click', function (e) {
    var b = e.target.closest && e.target.closest('.lg');
    if (!b) return;
    var k = b.getAttribute('data-s');
    hidden[k] = !hidden[k];
    applyHidden();
  });

  // today: fetch the page again and swap the chart and numbers
  var every = Number(fig.getAttribute('data-refresh'));
  function refresh() {
      if (drag) return;
      fetch(location.href, { credentials: 'same-origin' }).then(function (r) { return r.ok ? r.text() : null; }).then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, 'text/html');
        ['day-chart', 'legend'].forEach(function (id) {
          var n = doc.getElementById(id), o = document.getElementById(id);
          if (n && o) o.replaceWith(document.adoptNode(n));
        });
        var ns = doc.querySelector('.stats'), os = document.querySelector('.stats');
        if (ns && os) os.replaceWith(document.adoptNode(ns));
        data = null; loading = null; tip = null;
        bind(); applyHidden();
        fig.dispatchEvent(new Event('refreshed'));
      });
  }
  if (every > 0 && window.DOMParser) {
    setInterval(function () { if (!document.hidden) refresh(); }, every * 1000);
    fig.addEventListener('pm-refresh', refresh);
  }

  document.documentElement.classList.add('js');
  bind();
})();
