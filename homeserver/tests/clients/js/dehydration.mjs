// Dehydrated devices (MSC3814) through matrix-js-sdk's Rust crypto against a running hearth:
// Alice sets up cross-signing, secret storage and a dehydrated device, then logs out of her only
// device; Bob sends her an encrypted message (its room key goes to the dehydrated device);
// Alice's next login rehydrates the device with her recovery key and reads the message.
//
//     node dehydration.mjs http://127.0.0.1:8008

import { api, bodies, encryptedDm, fail, finish, login, register, start, waitFor } from "./harness.mjs";

let recoveryKey;
const secretStorage = { getSecretStorageKey: async ({ keys }) => [Object.keys(keys)[0], recoveryKey.privateKey] };

const suffix = Date.now().toString(36);
const aliceCredentials = await register(`alice${suffix}`);
const alice = await start(aliceCredentials, secretStorage);
const bob = await start(await register(`bob${suffix}`));

const crypto = alice.getCrypto();
if (!(await crypto.isDehydrationSupported())) fail("the server does not offer dehydrated devices");
await crypto.bootstrapCrossSigning({ authUploadDeviceSigningKeys: async (makeRequest) => makeRequest(null) });
recoveryKey = await crypto.createRecoveryKeyFromPassphrase();
await crypto.bootstrapSecretStorage({ createSecretStorageKey: async () => recoveryKey, setupNewSecretStorage: true });
await crypto.startDehydration();
const dehydrated = await api("GET", "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device", aliceCredentials.access_token);
const roomId = await encryptedDm(alice, bob);

// Alice logs out of her only device; Bob's client learns her device list changed.
alice.stopClient();
await api("POST", "/_matrix/client/v3/logout", aliceCredentials.access_token, {});
await waitFor("bob seeing only the dehydrated device", async () => {
  const devices = (await bob.getCrypto().getUserDeviceInfo([alice.getUserId()], true)).get(alice.getUserId());
  return devices && devices.size === 1 && devices.has(dehydrated.device_id);
});
await bob.sendTextMessage(roomId, "for your eyes only, while you were away");

// Alice's next login rehydrates the device and decrypts Bob's message.
const laptop = await start(await login(alice.getUserId()), secretStorage);
// With the recovery key, the laptop takes the cross-signing keys from secret storage (once it
// has fetched the public ones they must match).
await waitFor("the laptop seeing alice's cross-signing keys", () =>
  laptop.getCrypto().userHasCrossSigningKeys(alice.getUserId(), true));
await laptop.getCrypto().bootstrapCrossSigning({});
await laptop.getCrypto().startDehydration({ rehydrate: true });
await waitFor("the laptop decrypting what arrived while alice was away", async () =>
  (await bodies(laptop, roomId)).includes("for your eyes only, while you were away"));

finish("a dehydrated device received room keys and was rehydrated through matrix-js-sdk");
