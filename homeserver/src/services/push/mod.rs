//! Push notifications (spec: Client-Server API § Push Notifications): each user's push rules,
//! their evaluation for every new event (stored with the event), unread counts, GET
//! /notifications and pushers. Sending to push gateways comes with a later issue.

pub mod evaluate;
pub mod rules;
