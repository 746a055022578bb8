//! End-to-end encryption, server side (spec: Client-Server API § End-to-End Encryption): the
//! key directory (`keys`), who must re-fetch whose keys (`device_lists`), to-device messages
//! (`to_device`) and server-side key backup (`backup`). Encryption itself happens in clients;
//! the server stores and relays what it cannot read.

pub mod backup;
pub mod dehydrated;
pub mod device_lists;
mod federated;
pub mod key_counts;
pub mod keys;
pub mod signatures;
pub mod to_device;
