// powermeter dashboard: live updates over Server-Sent Events and the
// full-screen mode. The pages work without it.
(function () {
  'use strict';
  var live = document.getElementById('live');
  var skew = 0; // server clock minus browser clock, ms

  function panel() { return live && live.querySelector('.panel'); }

  function markStale() {
    var p = panel();
    if (!p) return;
    var at = Number(p.getAttribute('data-stale-at'));
    if (at && Date.now() + skew > at) p.classList.add('stale');
  }

  // the live power in the tab title
  var baseTitle = document.title;
  function title() {
    var t = document.getElementById('total');
    if (t) document.title = t.textContent.replace(/\s+/g, ' ').trim() + ' · ' + baseTitle;
  }

  function adopt() {
    var p = panel();
    if (!p) return;
    var now = Number(p.getAttribute('data-now'));
    if (now) skew = now - Date.now();
    markStale();
  }

  if (live && window.EventSource) {
    adopt();
    var es = new EventSource(live.getAttribute('data-events'));
    es.addEventListener('panel', function (e) {
      live.innerHTML = e.data;
      adopt();
      title();
    });
    title();
    setInterval(markStale, 1000);
  }

  var lock = null;
  function wake(on) {
    try {
      if (on && navigator.wakeLock && !lock) {
        navigator.wakeLock.request('screen').then(function (l) { lock = l; }, function () {});
      } else if (!on && lock) {
        lock.release(); lock = null;
      }
    } catch (err) { /* not supported */ }
  }

  var body = document.body;
  var toggle = document.querySelector('[data-fullscreen]');
  if (toggle) {
    toggle.addEventListener('click', function (ev) {
      ev.preventDefault();
      var big = !body.classList.contains('big');
      body.classList.toggle('big', big);
      wake(big);
      var root = document.documentElement;
      if (big && root.requestFullscreen) {
        root.requestFullscreen().catch(function () {});
      } else if (!big && document.fullscreenElement) {
        document.exitFullscreen().catch(function () {});
      }
    });
  }
  if (body.classList.contains('big')) wake(true);
  // in big mode a tap anywhere leaves it
  document.addEventListener('dblclick', function () {
    if (body.classList.contains('big') && toggle) toggle.click();
  });
  document.addEventListener('fullscreenchange', function () {
    if (!document.fullscreenElement && body.classList.contains('big')) {
      body.classList.remove('big');
      wake(false);
    }
  });

  // sortable tables: a click on a heading sorts by its column (data-v of
  // the cells, numbers where they are numbers); again: the other way
  document.querySelectorAll('table.sortable').forEach(function (tb) {
    var ths = tb.tHead ? tb.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(ths, function (th, col) {
      th.classList.add('sorter');
      th.setAttribute('tabindex', '0');
      th.setAttribute('aria-sort', 'none');
      function sort() {
        var dir = th.getAttribute('aria-sort') === 'ascending' ? -1 : 1;
        Array.prototype.forEach.call(ths, function (o) { o.setAttribute('aria-sort', 'none'); });
        th.setAttribute('aria-sort', dir > 0 ? 'ascending' : 'descending');
        var body = tb.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        function key(r) {
          var c = r.cells[col], v = c && (c.getAttribute('data-v') || c.textContent);
          var n = Number(v);
          return v !== '' && !isNaN(n) ? n : String(v);
        }
        rows.sort(function (a, b) {
          var x = key(a), y = key(b);
          if (typeof x === 'number' && typeof y === 'number') return dir * (x - y);
          return dir * String(x).localeCompare(String(y));
        });
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.addEventListener('click', sort);
      th.addEventListener('keydown', function (e) { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); sort(); } });
    });
  });

  // keys: ←/→ days, PgUp/PgDn months (or years), T today; on links that
  // carry data-key
  function go(key) {
    var a = document.querySelector('a[data-key="' + key + '"]');
    if (a) { location.assign(a.href); return true; }
    return false;
  }
  document.addEventListener('keydown', function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey || e.defaultPrevented) return;
    var tag = (e.target && e.target.tagName) || '';
    if (tag === 'INPUT' || tag === 'SELECT' || tag === 'TEXTAREA' || (e.target && e.target.isContentEditable)) return;
    var k = e.key === 'T' ? 't' : e.key;
    if ((k === 'ArrowLeft' || k === 'ArrowRight' || k === 'PageUp' || k === 'PageDown' || k === 't') && go(k)) e.preventDefault();
  });
  // swipe on phones: left = next, right = previous (not on the chart,
  // where a finger shows values)
  var sx = null, sy = 0;
  document.addEventListener('touchstart', function (e) {
    var t = e.target;
    sx = null;
    if (e.touches.length !== 1 || (t.closest && t.closest('.plot, .table-wrap, input, select'))) return;
    sx = e.touches[0].clientX; sy = e.touches[0].clientY;
  }, { passive: true });
  document.addEventListener('touchend', function (e) {
    if (sx === null) return;
    var dx = e.changedTouches[0].clientX - sx, dy = e.changedTouches[0].clientY - sy;
    sx = null;
    if (Math.abs(dx) > 70 && Math.abs(dy) < 0.5 * Math.abs(dx)) go(dx < 0 ? 'ArrowRight' : 'ArrowLeft');
  }, { passive: true });
})();
