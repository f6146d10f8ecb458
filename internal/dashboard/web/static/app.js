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
    });
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
})();
