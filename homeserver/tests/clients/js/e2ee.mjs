// End-to-end encryption through matrix-js-sdk's Rust crypto (the stack Element Web uses)
// against a running hearth: an encrypted DM both ways, cross-signing bootstrapped through
// /keys/device_signing/upload, a key backup made by the SDK, and a second device of the same
// user that restores the backup and decrypts the history. Exits non-zero on any failure.
//
//     node e2ee.mjs http://127.0.0.1:8008

import { PASSWORD, api, bodies, encryptedDm, fail, finish, login, register, start, waitFor } from "./harness.mjs";

const suffix = Date.now().toString(36);
const aliceCredentials = await register(`alice${suffix}`);
const bobCredentials = await register(`bob${suffix}`);
const alice = await start(aliceCredentials);
const bob = await start(bobCredentials);

// An encrypted DM.
const roomId = await encryptedDm(alice, bob);
if (!(await alice.getCrypto().isEncryptionEnabledInRoom(roomId))) fail("the room is not encrypted");
const { event_id: sentId } = await alice.sendTextMessage(roomId, "hello from matrix-js-sdk");
await waitFor("bob decrypting alice's message", async () => (await bodies(bob, roomId)).includes("hello from matrix-js-sdk"));
const raw = await api("GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/event/${encodeURIComponent(sentId)}`, bobCredentials.access_token);
if (raw.type !== "m.room.encrypted" || JSON.stringify(raw).includes("hello from")) fail(`the server holds plaintext: ${JSON.stringify(raw)}`);
await bob.sendTextMessage(roomId, "hello back, encrypted");
await waitFor("alice decrypting bob's reply", async () => (await bodies(alice, roomId)).includes("hello back, encrypted"));

// Cross-signing, bootstrapped by the SDK (no password needed for a first upload).
await alice.getCrypto().bootstrapCrossSigning({
  authUploadDeviceSigningKeys: async (makeRequest) => {
    try {
      await makeRequest(null);
    } catch {
      await makeRequest({ type: "m.login.password", identifier: { type: "m.id.user", user: alice.getUserId() }, password: PASSWORD });
    }
  },
});
const status = await alice.getCrypto().getCrossSigningStatus();
if (!status.publicKeysOnDevice || !status.privateKeysCachedLocally.masterKey) fail(`cross-signing not set up: ${JSON.stringify(status)}`);
if (!(await bob.getCrypto().userHasCrossSigningKeys(alice.getUserId(), true))) fail("bob cannot see alice's identity");

// A key backup made by the SDK, restored on Alice's second device.
await alice.getCrypto().resetKeyBackup();
const backupVersion = (await api("GET", "/_matrix/client/v3/room_keys/version", aliceCredentials.access_token)).version;
await waitFor("the room keys in the backup", async () => {
  const backup = await api("GET", `/_matrix/client/v3/room_keys/keys?version=${backupVersion}`, aliceCredentials.access_token);
  return Object.keys(backup.rooms?.[roomId]?.sessions ?? {}).length >= 2;
});
const backupKey = await alice.getCrypto().getSessionBackupPrivateKey();
if (!backupKey) fail("no backup key on alice's first device");

const laptop = await start(await login(alice.getUserId()));
await waitFor("the room on the laptop", () => laptop.getRoom(roomId));
await laptop.getCrypto().storeSessionBackupPrivateKey(backupKey, backupVersion);
const restored = await laptop.getCrypto().restoreKeyBackup();
if (restored.imported < 2) fail(`restored ${JSON.stringify(restored)}`);
await waitFor("the laptop decrypting the history", async () => {
  const texts = await bodies(laptop, roomId);
  return texts.includes("hello from matrix-js-sdk") && texts.includes("hello back, encrypted");
});

finish("encrypted DM, cross-signing and key backup restore through matrix-js-sdk");
