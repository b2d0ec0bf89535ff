// Two unmodified Azure IoT SDK ModuleClients against the hub, configured the way IoT Edge
// configures a module (EdgeHubConnectionString with GatewayHostName, EdgeModuleCACertificateFile):
// the sender's sendOutputEvent must reach the receiver's inputMessage through the hub's route.
// Prints one JSON line per received message ("RECEIVED {...}") and "DONE" at the end; exits 1
// with a reason on any error or after the deadline.
'use strict';
const { ModuleClient, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

const count = parseInt(process.env.MESSAGE_COUNT || '3', 10);
const fail = (why) => { console.log('ERROR ' + why); process.exit(1); };
setTimeout(() => fail('deadline passed'), parseInt(process.env.DEADLINE_MS || '60000', 10)).unref();

function open(connectionString) {
  return new Promise((resolve, reject) => {
    process.env.EdgeHubConnectionString = connectionString;
    ModuleClient.fromEnvironment(Mqtt, (err, client) => {
      if (err) return reject(err);
      client.on('error', (e) => fail('client error: ' + e));
      client.open((e) => (e ? reject(e) : resolve(client)));
    });
  });
}

(async () => {
  const receiver = await open(process.env.RECEIVER_CS);
  let received = 0;
  receiver.on('inputMessage', (input, msg) => {
    const props = {};
    for (const p of msg.properties.propertyList) props[p.key] = p.value;
    console.log('RECEIVED ' + JSON.stringify({ input, body: msg.getData().toString(), props,
      messageId: msg.messageId, contentType: msg.contentType }));
    receiver.complete(msg, () => {});
    if (++received === count) {
      console.log('DONE');
      process.exit(0);
    }
  });
  const sender = await open(process.env.SENDER_CS);
  for (let i = 0; i < count; i++) {
    const m = new Message(JSON.stringify({ n: i, temperature: 20 + i }));
    m.messageId = 'msg-' + i;
    m.contentType = 'application/json';
    m.contentEncoding = 'utf-8';
    m.properties.add('alert', i % 2 ? 'true' : 'false');
    await new Promise((resolve, reject) => sender.sendOutputEvent('out1', m, (e) => (e ? reject(e) : resolve())));
  }
})().catch((e) => fail(e && e.message ? e.message : String(e)));
