// Package notify tells people when a refresh run goes wrong, and when it
// recovers: a generic JSON webhook, a Microsoft Teams workflow webhook
// (an Adaptive Card message) or a Slack incoming webhook. Delivery is
// asynchronous, with a timeout and retries per attempt; a failed
// notification is logged and counted and never holds up or stops the
// daemon.
//
// Main types: Notifier (New, Send, Close), Target, Event. Webhook URLs
// carry credentials, so a URL never reaches a log line or an error: only
// the target's name does. The package does not decide which runs deserve
// an event; the caller does.
package notify
