// EdDSA (Ed25519) JWT helpers for tests against a local sqld.
// Node built-ins only (node:crypto).
//
//   const auth = generateAuth();
//   fs.writeFileSync(pemPath, auth.publicKeyPem);   // sqld --auth-jwt-key-file pemPath
//   auth.rwToken(); auth.roToken(); auth.token({ a: 'rw', exp: ... });
import crypto from 'node:crypto';

export function base64url(input) {
  const buf = Buffer.isBuffer(input) ? input : Buffer.from(typeof input === 'string' ? input : JSON.stringify(input));
  return buf.toString('base64url');
}

/** Sign arbitrary claims (object) as an EdDSA JWT with the given Ed25519 KeyObject. */
export function signJwt(privateKey, claims, header = { alg: 'EdDSA', typ: 'JWT' }) {
  const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  const sig = crypto.sign(null, Buffer.from(signingInput), privateKey);
  return `${signingInput}.${base64url(sig)}`;
}

/** Standard time claims: iat = now, exp = now + ttlSeconds (default 1 h). */
export function timeClaims(ttlSeconds = 3600) {
  const now = Math.floor(Date.now() / 1000);
  return { iat: now, exp: now + ttlSeconds };
}

/**
 * Generate a fresh Ed25519 key pair.
 * Returns { publicKeyPem, privateKey, publicKey, token(claims), rwToken(extra), roToken(extra) }.
 * token(claims) signs exactly the given claims (no defaults added);
 * rwToken/roToken add {a:'rw'|'ro', iat, exp: +1h}.
 */
export function generateAuth() {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519');
  const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' });
  const token = (claims = {}) => signJwt(privateKey, claims);
  return {
    publicKeyPem,
    publicKey,
    privateKey,
    token,
    rwToken: (extra = {}) => token({ ...timeClaims(), a: 'rw', ...extra }),
    roToken: (extra = {}) => token({ ...timeClaims(), a: 'ro', ...extra }),
  };
}

let defaultAuth;
function getDefault() {
  return (defaultAuth ??= generateAuth());
}
/** Read-write token signed with a lazily-created module-level key (see defaultAuthKeys()). */
export function rwToken(extra) {
  return getDefault().rwToken(extra);
}
/** Read-only token signed with a lazily-created module-level key (see defaultAuthKeys()). */
export function roToken(extra) {
  return getDefault().roToken(extra);
}
/** The module-level key pair used by the top-level rwToken()/roToken(). */
export function defaultAuthKeys() {
  return getDefault();
}

/** An HS256 JWT over `claims` with `secret` (the edge Worker's JWT_SECRET). */
export function signHs256(secret, claims, header = { alg: 'HS256', typ: 'JWT' }) {
  const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  return `${input}.${crypto.createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** An HS256 client token for `sub`, valid for an hour. */
export function hs256Token(secret, sub, extra = {}) {
  return signHs256(secret, { sub, exp: Math.floor(Date.now() / 1000) + 3600, ...extra });
}
