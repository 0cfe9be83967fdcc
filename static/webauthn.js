// flowgate: the one script of the login UI. It hands WebAuthn options rendered by the server
// (data-* attributes of a form) to navigator.credentials, and posts the result back through
// the same form (a hidden field), so the server does every check. The page's CSP allows this
// file and no other script, inline or not.
"use strict";
(function () {
  function toBuf(s) {
    var b = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
    var a = new Uint8Array(b.length);
    for (var i = 0; i < b.length; i++) a[i] = b.charCodeAt(i);
    return a.buffer;
  }
  function toB64(buf) {
    var a = new Uint8Array(buf), s = "";
    for (var i = 0; i < a.length; i++) s += String.fromCharCode(a[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function creds(list) {
    return (list || []).map(function (c) { return { type: c.type, id: toBuf(c.id), transports: c.transports }; });
  }
  function creationOptions(o) {
    var p = Object.assign({}, o);
    p.challenge = toBuf(o.challenge);
    p.user = Object.assign({}, o.user, { id: toBuf(o.user.id) });
    p.excludeCredentials = creds(o.excludeCredentials);
    return p;
  }
  function requestOptions(o) {
    var p = Object.assign({}, o);
    p.challenge = toBuf(o.challenge);
    p.allowCredentials = creds(o.allowCredentials);
    return p;
  }
  function credentialJson(c) {
    var r = c.response, out = { id: c.id, rawId: toB64(c.rawId), type: c.type, response: {
      clientDataJSON: toB64(r.clientDataJSON) }, authenticatorAttachment: c.authenticatorAttachment || null,
      clientExtensionResults: c.getClientExtensionResults ? c.getClientExtensionResults() : {} };
    if (r.attestationObject) {
      out.response.attestationObject = toB64(r.attestationObject);
      if (r.getTransports) out.response.transports = r.getTransports();
    } else {
      out.response.authenticatorData = toB64(r.authenticatorData);
      out.response.signature = toB64(r.signature);
      out.response.userHandle = r.userHandle ? toB64(r.userHandle) : null;
    }
    return JSON.stringify(out);
  }
  function status(form, text) {
    var el = form.querySelector("[data-webauthn-status]");
    if (el) el.textContent = text;
  }
  function send(form, field, credential) {
    form.querySelector("input[name='" + field + "']").value = credentialJson(credential);
    form.submit();
  }
  function failed(form, e) {
    status(form, e && e.name === "NotAllowedError" ? "The passkey request was cancelled or timed out." : "This passkey could not be used here.");
  }
  if (!window.PublicKeyCredential || !navigator.credentials) {
    document.querySelectorAll("[data-webauthn-status]").forEach(function (el) {
      el.textContent = "This browser does not support passkeys.";
    });
    return;
  }
  // Registration: authenticator_webauthn.
  document.querySelectorAll("form[data-webauthn-create]").forEach(function (form) {
    var button = form.querySelector("[data-webauthn-start]");
    status(form, "");
    button.addEventListener("click", function () {
      var o = JSON.parse(form.getAttribute("data-webauthn-create"));
      navigator.credentials.create({ publicKey: creationOptions(o) })
        .then(function (c) { send(form, "response", c); }, function (e) { failed(form, e); });
    });
  });
  // Second factor or passwordless: authenticator_validate.
  document.querySelectorAll("form[data-webauthn-get]").forEach(function (form) {
    var button = form.querySelector("[data-webauthn-start]");
    status(form, "");
    button.addEventListener("click", function () {
      var o = JSON.parse(form.getAttribute("data-webauthn-get"));
      navigator.credentials.get({ publicKey: requestOptions(o) })
        .then(function (c) { send(form, "webauthn", c); }, function (e) { failed(form, e); });
    });
  });
  // Autofill: identification offers the user's passkeys in the username field.
  document.querySelectorAll("form[data-webauthn-autofill]").forEach(function (form) {
    if (!PublicKeyCredential.isConditionalMediationAvailable) return;
    PublicKeyCredential.isConditionalMediationAvailable().then(function (ok) {
      if (!ok) return;
      var o = JSON.parse(form.getAttribute("data-webauthn-autofill"));
      navigator.credentials.get({ mediation: "conditional", publicKey: requestOptions(o) })
        .then(function (c) { if (c) send(form, "passkey", c); }, function () {});
    });
  });
})();
