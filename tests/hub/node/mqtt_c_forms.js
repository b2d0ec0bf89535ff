// A generic MQTT client (mqtt.js, installed with the Azure SDK packages) speaking the C SDK's twin
// and method topics to the hub on one connection, as the C SDK does: MQTT 3.1.1, a SAS-token
// password, `$rid` a decimal number, an empty GET payload, QoS 0 requests.
// GET, a reported patch, a malformed patch and a second GET, printing "<NAME> <topic> <payload>"
// for each answer; then "READY" (subscribed to method requests) and, for the one call the test
// makes, answers 200 with {"rebooting":true} on the same connection and prints
// "METHOD <topic> <payload>" and "DONE". Exits 1 with a reason on any error or after the deadline.
'use strict';
const mqtt = require('mqtt');

const fail = (why) => { console.log('ERROR ' + why); process.exit(1); };
setTimeout(() => fail('deadline passed'), parseInt(process.env.DEADLINE_MS || '60000', 10)).unref();

const client = mqtt.connect(process.env.HUB_URL, {
  protocolVersion: 4, clientId: process.env.CLIENT_ID, username: process.env.USERNAME,
  password: process.env.PASSWORD, clean: true, reconnectPeriod: 0,
});
client.on('error', (e) => fail('client error: ' + e));
client.on('close', () => { if (!done) fail('connection closed'); });

let done = false;
let waiting = null;  // [rid, resolve] of the twin request in flight
client.on('message', (topic, payload) => {
  if (topic.startsWith('$iothub/twin/res/') && waiting) {
    const [rid, resolve] = waiting;
    if (topic.includes('?$rid=' + rid)) { waiting = null; resolve([topic, payload.toString()]); }
    return;
  }
  if (topic.startsWith('$iothub/methods/POST/')) {
    console.log('METHOD ' + topic + ' ' + payload.toString());
    const rid = /\?\$rid=([^&]*)/.exec(topic)[1];
    client.publish('$iothub/methods/res/200/?$rid=' + rid, '{"rebooting":true}', { qos: 0 }, (e) => {
      if (e) fail('answer: ' + e);
      done = true;
      console.log('DONE');
      client.end(false, () => process.exit(0));
    });
  }
});

const request = (name, topic, rid, body) => new Promise((resolve) => {
  waiting = [String(rid), resolve];
  client.publish(topic + '?$rid=' + rid, body, { qos: 0 });
}).then(([t, p]) => console.log(name + ' ' + t + ' ' + p));

client.on('connect', async () => {
  await new Promise((resolve) => client.subscribe(['$iothub/twin/res/#', '$iothub/methods/POST/#'], { qos: 0 },
    (e, granted) => {
      if (e || granted.some((g) => g.qos > 1)) fail('subscribe: ' + (e || JSON.stringify(granted)));
      resolve();
    }));
  await request('GET', '$iothub/twin/GET/', 1, '');
  await request('PATCH', '$iothub/twin/PATCH/properties/reported/', 2, '{"fw":"2.0","battery":{"level":93}}');
  await request('BAD', '$iothub/twin/PATCH/properties/reported/', 3, '{"fw":');
  await request('GET2', '$iothub/twin/GET/', 4, '');
  console.log('READY');
});
