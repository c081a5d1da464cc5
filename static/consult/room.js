/* Huizhen consult room: signalling over /ws/consult/<session>/, one RTCPeerConnection per
   peer (full mesh, at most six people), chat kept with the consult, pre-call echo test,
   audio-only mode and still images for a weak link, store and forward when the call fails.
   Plain JavaScript, no external assets. window.huizhenRoom exposes state for tests. */
(function () {
  "use strict";
  var root = document.getElementById("room");
  var T = JSON.parse(document.getElementById("room-strings").textContent);
  var sessionId = root.dataset.session;
  var isStaff = root.dataset.staff === "1";
  var ptoken = isStaff ? "" : sessionStorage.getItem("huizhen.participant." + sessionId) || "";
  var ws = null, me = null, seq = 0, iceServers = [], local = null, audioOnly = false;
  var pcs = {}, people = {}, awayTimers = {}, retries = 0, stopped = false, lostSince = null;
  var FINAL = { 4401: T.forbidden, 4403: T.forbidden, 4410: T.ended, 4429: T.throttled };

  function $(id) { return document.getElementById(id); }
  function status(text) { $("status").textContent = text; }
  function csrf() {
    var m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
  function send(type, extra) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    seq += 1;
    var frame = { type: type, seq: seq };
    for (var k in extra) frame[k] = extra[k];
    ws.send(JSON.stringify(frame));
    return true;
  }

  function fallback() {
    $("fallback").hidden = false;
  }

  // --- media ---
  function media() {
    if (local) return Promise.resolve(local);
    return navigator.mediaDevices.getUserMedia({ audio: true, video: !audioOnly })
      .catch(function () { status(T.noCamera); return new MediaStream(); })
      .then(function (stream) { local = stream; $("local").srcObject = stream; return stream; });
  }

  function tile(id) {
    var fig = $("v-" + id);
    if (!fig) {
      fig = document.createElement("figure");
      fig.id = "v-" + id;
      var v = document.createElement("video");
      v.autoplay = true; v.playsInline = true;
      var cap = document.createElement("figcaption");
      cap.textContent = (people[id] && people[id].name) || "";
      fig.appendChild(v); fig.appendChild(cap);
      $("videos").appendChild(fig);
    }
    return fig.querySelector("video");
  }

  // --- peers ---
  function peer(id) {
    if (pcs[id]) return pcs[id];
    var pc = new RTCPeerConnection({ iceServers: iceServers });
    pcs[id] = pc;
    (local ? local.getTracks() : []).forEach(function (t) { pc.addTrack(t, local); });
    pc.ontrack = function (e) { tile(id).srcObject = e.streams[0] || new MediaStream([e.track]); };
    pc.onicecandidate = function (e) {
      if (e.candidate) send("ice", { to: id, payload: { candidate: e.candidate.toJSON() } });
    };
    pc.oniceconnectionstatechange = function () {
      var s = pc.iceConnectionState;
      if (s === "connected" || s === "completed") { status(T.connected); pc._restarts = 0; }
      if (s === "failed") {
        pc._restarts = (pc._restarts || 0) + 1;
        if (pc._restarts <= 2) offer(id, true);
        else { send("call_failed", { payload: { reason: "ice failed" } }); fallback(); }
      }
    };
    return pc;
  }

  // ICE candidates that arrive before their peer's remote description is set would be
  // refused by addIceCandidate; they wait here and are added once it is.
  var pendingIce = {};
  function addIce(id, candidate) {
    var pc = pcs[id];
    if (pc && pc.remoteDescription) return pc.addIceCandidate(candidate).catch(function () {});
    (pendingIce[id] = pendingIce[id] || []).push(candidate);
  }
  function flushIce(id) {
    var pc = pcs[id], waiting = pendingIce[id] || [];
    delete pendingIce[id];
    if (!pc) return;
    waiting.forEach(function (c) { pc.addIceCandidate(c).catch(function () {}); });
  }

  function drop(id) {
    delete pendingIce[id];
    if (pcs[id]) { pcs[id].close(); delete pcs[id]; }
    var fig = $("v-" + id);
    if (fig) fig.remove();
  }

  function offer(id, restart) {
    var pc = peer(id);
    return pc.createOffer(restart ? { iceRestart: true } : {})
      .then(function (o) { return pc.setLocalDescription(o); })
      .then(function () {
        send("offer", { to: id, payload: { sdp: pc.localDescription.sdp, restart: !!restart } });
      });
  }

  function onOffer(from, payload) {
    var existing = pcs[from];
    if (existing && !payload.restart) drop(from);
    var pc = peer(from);
    return media().then(function () {
      return pc.setRemoteDescription({ type: "offer", sdp: payload.sdp });
    }).then(function () { flushIce(from); return pc.createAnswer(); })
      .then(function (a) { return pc.setLocalDescription(a); })
      .then(function () { send("answer", { to: from, payload: { sdp: pc.localDescription.sdp } }); });
  }

  // --- people and chat ---
  function renderPeople() {
    var ul = $("people");
    ul.textContent = "";
    Object.keys(people).forEach(function (id) {
      var p = people[id], li = document.createElement("li");
      li.dataset.id = id;
      li.textContent = p.name + (id === me ? " (" + T.you + ")" : "") + " ";
      var small = document.createElement("small");
      small.textContent = T[p.presence] || p.presence || "";
      li.appendChild(small);
      ul.appendChild(li);
    });
  }

  function chatLine(name, text, kind, image) {
    var p = document.createElement("p");
    p.className = kind || "chat";
    var b = document.createElement("b");
    b.textContent = name + " ";
    p.appendChild(b);
    if (image) { var img = document.createElement("img"); img.src = image; img.alt = T.image; p.appendChild(img); }
    else p.appendChild(document.createTextNode(text));
    $("chat-log").appendChild(p);
    $("chat-log").scrollTop = $("chat-log").scrollHeight;
  }

  // --- signalling ---
  var handlers = {
    welcome: function (m) {
      me = m.me;
      seq = Math.max(seq, m.last_seq);
      iceServers = m.ice_servers || [];
      people = {};
      m.participants.forEach(function (p) { people[p.id] = p; });
      renderPeople();
      lostSince = null;
      refreshRecording();
      return media().then(function () {
        m.participants.forEach(function (p) {
          if (p.id === me || p.presence === "offline") return;
          var pc = pcs[p.id];
          if (pc && m.resumed && pc.connectionState !== "failed") offer(p.id, true);
          else if (p.presence === "online") { drop(p.id); offer(p.id, false); }
        });
      });
    },
    presence: function (m) {
      if (!people[m.from]) return;
      people[m.from].presence = m.state;
      renderPeople();
      clearTimeout(awayTimers[m.from]);
      if (m.state === "away") {
        awayTimers[m.from] = setTimeout(function () {
          people[m.from].presence = "offline"; renderPeople(); drop(m.from);
        }, 60000);
      }
    },
    roster: function (m) {
      var next = {};
      m.participants.forEach(function (p) {
        next[p.id] = people[p.id] || Object.assign({ presence: "offline" }, p);
      });
      Object.keys(people).forEach(function (id) { if (!next[id]) drop(id); });
      people = next;
      renderPeople();
      refreshRecording();
    },
    offer: function (m) { return onOffer(m.from, m.payload); },
    answer: function (m) {
      var pc = pcs[m.from];
      if (pc) {
        return pc.setRemoteDescription({ type: "answer", sdp: m.payload.sdp })
          .then(function () { flushIce(m.from); });
      }
    },
    ice: function (m) { if (m.payload.candidate) return addIce(m.from, m.payload.candidate); },
    restart: function (m) { if (pcs[m.from]) return offer(m.from, true); },
    chat: function (m) { chatLine(m.payload.name, m.payload.text, "chat"); },
    media: function (m) {
      if (m.payload.image) chatLine((people[m.from] || {}).name || "", "", "chat", m.payload.image);
    },
    hangup: function (m) { drop(m.from); },
    store_and_forward: function () { fallback(); },
    revoked: function () { stopped = true; status(T.revoked); },
    ended: function () { stopped = true; status(T.ended); },
    recording: function (m) { return recordingChanged(m.payload || {}); },
    error: function (m) { status(m.message); },
    pong: function () {}
  };

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var q = ptoken ? "?p=" + encodeURIComponent(ptoken) : "";
    if (!isStaff && !ptoken) { status(T.needLink); return; }
    ws = new WebSocket(scheme + location.host + "/ws/consult/" + sessionId + "/" + q);
    ws.onopen = function () { retries = 0; };
    ws.onmessage = function (e) {
      var m = JSON.parse(e.data);
      var h = handlers[m.type];
      if (h) Promise.resolve(h(m)).catch(function (err) { console.warn(err); });
    };
    ws.onclose = function (e) {
      if (FINAL[e.code]) { stopped = true; status(FINAL[e.code]); return; }
      if (stopped) return;
      status(T.reconnecting);
      lostSince = lostSince || Date.now();
      if (Date.now() - lostSince > 60000) fallback();
      retries += 1;
      setTimeout(connect, Math.min(10000, 500 * Math.pow(2, retries)));
    };
  }

  // A network change: restart ICE on every peer; the socket reconnects by itself.
  window.addEventListener("online", function () {
    Object.keys(pcs).forEach(function (id) { offer(id, true); });
  });

  // --- controls ---
  $("chat-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var input = e.target.elements.text, text = input.value.trim();
    if (text && send("chat", { payload: { text: text } })) input.value = "";
  });
  $("hangup").addEventListener("click", function () {
    send("hangup", { payload: {} });
    stopped = true;
    Object.keys(pcs).forEach(drop);
    if (local) local.getTracks().forEach(function (t) { t.stop(); });
    if (ws) ws.close(1000);
    status(T.ended);
  });
  $("audio-only").addEventListener("click", function (e) {
    audioOnly = !audioOnly;
    e.target.setAttribute("aria-pressed", String(audioOnly));
    if (local) local.getVideoTracks().forEach(function (t) { t.enabled = !audioOnly; });
  });
  $("still").addEventListener("click", function () {
    var v = $("local");
    if (!v.videoWidth) return;
    var c = document.createElement("canvas");
    var scale = Math.min(1, 480 / v.videoWidth);
    c.width = Math.round(v.videoWidth * scale); c.height = Math.round(v.videoHeight * scale);
    c.getContext("2d").drawImage(v, 0, 0, c.width, c.height);
    var data = c.toDataURL("image/jpeg", 0.6);
    if (data.length < 60000 && send("media", { payload: { image: data } })) chatLine(T.you, "", "chat", data);
  });

  // --- pre-call echo test ---
  function classify(rtt, loss) {
    if (rtt == null) return "store_and_forward";
    if (rtt < 300 && loss < 0.03) return "video_ok";
    if (rtt < 800 && loss < 0.10) return "audio_only";
    return "store_and_forward";
  }

  function gathered(pc) {
    return new Promise(function (resolve) {
      if (pc.iceGatheringState === "complete") return resolve();
      pc.addEventListener("icegatheringstatechange", function () {
        if (pc.iceGatheringState === "complete") resolve();
      });
      setTimeout(resolve, 3000);
    });
  }

  function precall() {
    var out = $("precall-result");
    out.hidden = false; out.textContent = T.testing;
    var pc = new RTCPeerConnection({ iceServers: iceServers });
    var dc = pc.createDataChannel("rtt");
    var rtts = [];
    var result = { done: false };
    window.huizhenRoom.precall = result;
    return media().then(function (stream) {
      stream.getTracks().forEach(function (t) { pc.addTrack(t, stream); });
      dc.onmessage = function (e) { rtts.push(performance.now() - Number(e.data)); };
      dc.onopen = function () {
        var n = 0, timer = setInterval(function () {
          if (++n > 20 || dc.readyState !== "open") return clearInterval(timer);
          dc.send(String(performance.now()));
        }, 150);
      };
      return pc.createOffer();
    }).then(function (o) { return pc.setLocalDescription(o); })
      .then(function () { return gathered(pc); })
      .then(function () {
        var body = { sdp: pc.localDescription.sdp, type: "offer" };
        if (ptoken) body.participant_token = ptoken;
        return fetch("/api/v1/consult/precall/offer/", {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
          body: JSON.stringify(body)
        });
      }).then(function (r) { if (!r.ok) throw new Error("offer " + r.status); return r.json(); })
      .then(function (answer) { return pc.setRemoteDescription({ type: "answer", sdp: answer.sdp }); })
      .then(function () { return new Promise(function (r) { setTimeout(r, 5000); }); })
      .then(function () { return pc.getStats(); })
      .then(function (stats) {
        var lost = 0, received = 0, relayed = false, frames = 0, pair = null;
        stats.forEach(function (s) {
          if (s.type === "inbound-rtp") {
            lost += s.packetsLost || 0; received += s.packetsReceived || 0;
            frames += s.framesDecoded || 0;
          }
          if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
        });
        if (pair) {
          var l = stats.get(pair.localCandidateId), r = stats.get(pair.remoteCandidateId);
          relayed = (l && l.candidateType === "relay") || (r && r.candidateType === "relay");
        }
        rtts.sort(function (a, b) { return a - b; });
        var rtt = rtts.length ? rtts[Math.floor(rtts.length / 2)] : null;
        if (rtt == null && pair && pair.currentRoundTripTime != null) rtt = pair.currentRoundTripTime * 1000;
        var loss = received + lost > 0 ? lost / (received + lost) : 0;
        var verdict = classify(rtt, loss);
        Object.assign(result, { done: true, rtt: rtt, loss: loss, relayed: relayed,
          framesDecoded: frames, verdict: verdict, ice: pc.iceConnectionState });
        out.textContent = T[verdict] + " (" + T.rtt + " " + (rtt == null ? "–" : Math.round(rtt) + " ms") +
          ", " + T.loss + " " + (loss * 100).toFixed(1) + " %, " + (relayed ? T.relayed : T.direct) + ")";
        if (verdict === "audio_only" && !audioOnly) $("audio-only").click();
        if (verdict === "store_and_forward") fallback();
        pc.close();
        return result;
      }).catch(function (err) {
        Object.assign(result, { done: true, verdict: "store_and_forward", error: String(err) });
        out.textContent = T.store_and_forward;
        pc.close();
        return result;
      });
  }
  $("precall").addEventListener("click", function () { precall(); });

  // --- recording (with everyone's consent) ---
  // The recorder is a server peer: while a recording runs, each browser keeps one extra
  // send-only connection to it, offered to /api/v1/consult/live/<session>/recording/offer/.
  var recPc = null, recState = { recording: null, missing: [], participants: [] };
  var recBox = $("recording");
  function recApi(path, method) {
    return fetch("/api/v1/consult/live/" + sessionId + "/recording/" + path, {
      method: method || "GET", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() }
    }).then(function (r) { return r.json().then(function (b) { b._status = r.status; return b; }); });
  }
  function renderRecording() {
    var on = !!(recState.recording && recState.recording.status === "recording");
    $("rec-state").textContent = on ? recBox.dataset.on : recBox.dataset.off;
    $("rec-state").classList.toggle("on", on);
    if (!isStaff) return;
    var mine = (recState.participants || []).filter(function (p) { return p.id === me; })[0];
    $("rec-consent").setAttribute("aria-pressed", String(!!(mine && mine.consented)));
    var missing = recState.missing || [];
    $("rec-missing").textContent = missing.length
      ? recBox.dataset.missing + " " + missing.map(function (p) { return p.name; }).join(", ")
      : recBox.dataset.all;
    $("rec-toggle").textContent = on ? recBox.dataset.stop : recBox.dataset.start;
    $("rec-toggle").disabled = !on && missing.length > 0;
  }
  function refreshRecording() {
    if (!isStaff) return Promise.resolve();
    return recApi("").then(function (b) {
      if (b._status !== 200) return;
      recState = b; renderRecording();
      if (b.recording && b.recording.status === "recording") startRecorderPeer();
      else stopRecorderPeer();
    }).catch(function () {});
  }
  function recordingChanged(payload) {
    recState.recording = { id: payload.id, status: payload.state };
    renderRecording();
    if (payload.state === "recording") startRecorderPeer(); else stopRecorderPeer();
    return refreshRecording();
  }
  function stopRecorderPeer() { if (recPc) { recPc.close(); recPc = null; } }
  function startRecorderPeer() {
    if (recPc || stopped) return Promise.resolve();
    var pc = recPc = new RTCPeerConnection({ iceServers: iceServers });
    return media().then(function (stream) {
      stream.getTracks().forEach(function (t) { pc.addTransceiver(t, { direction: "sendonly", streams: [stream] }); });
      return pc.createOffer();
    }).then(function (o) { return pc.setLocalDescription(o); })
      .then(function () { return gathered(pc); })
      .then(function () {
        var body = { sdp: pc.localDescription.sdp, type: "offer" };
        if (ptoken) body.participant_token = ptoken;
        return fetch("/api/v1/consult/live/" + sessionId + "/recording/offer/", {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
          body: JSON.stringify(body)
        });
      }).then(function (r) { if (!r.ok) throw new Error("recorder " + r.status); return r.json(); })
      .then(function (answer) { return pc.setRemoteDescription({ type: "answer", sdp: answer.sdp }); })
      .catch(function (err) { console.warn(err); if (recPc === pc) stopRecorderPeer(); });
  }
  if (isStaff) {
    $("rec-consent").addEventListener("click", function (e) {
      var agreed = e.target.getAttribute("aria-pressed") === "true";
      recApi("consent/", agreed ? "DELETE" : "POST").then(function (b) {
        if (b._status === 200) { recState = b; renderRecording(); } else status(b.detail);
      });
    });
    $("rec-toggle").addEventListener("click", function () {
      var on = recState.recording && recState.recording.status === "recording";
      recApi(on ? "stop/" : "", "POST").then(function (b) {
        if (b._status >= 400) status(b.detail);
        return refreshRecording();
      });
    });
  }

  window.huizhenRoom = {
    recording: function () { return recState; },
    me: function () { return me; },
    precall: null,
    runPrecall: precall,
    report: function () {
      var ids = Object.keys(pcs);
      return Promise.all(ids.map(function (id) {
        return pcs[id].getStats().then(function (stats) {
          var frames = 0;
          stats.forEach(function (s) { if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded || 0; });
          return { peer: id, ice: pcs[id].iceConnectionState, framesDecoded: frames };
        });
      }));
    }
  };
  connect();
})();
