// An unmodified Azure IoT SDK ModuleClient's twin and direct methods against the hub: getTwin()
// returns the manifest's desired properties, twin.properties.reported.update() succeeds and a
// second read shows it, a 'properties.desired' handler receives the desired properties, and an
// onMethod('reboot') handler answers a call (made by the test with `edgehub method invoke`).
// Prints "DESIRED {...}", "REPORTED {...}", "PATCH {...}", "READY" (methods registered),
// "METHOD {...}" and "DONE"; exits 1 with a reason on any error or after the deadline.
'use strict';
const { ModuleClient } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

const fail = (why) => { console.log('ERROR ' + why); process.exit(1); };
setTimeout(() => fail('deadline passed'), parseInt(process.env.DEADLINE_MS || '60000', 10)).unref();

const strip = (section) => {
  const out = {};
  for (const k of Object.keys(section)) if (!k.startsWith('$')) out[k] = section[k];
  return out;
};

(async () => {
  process.env.EdgeHubConnectionString = process.env.MODULE_CS;
  const client = await new Promise((resolve, reject) => {
    ModuleClient.fromEnvironment(Mqtt, (err, c) => (err ? reject(err) : resolve(c)));
  });
  client.on('error', (e) => fail('client error: ' + e));
  await new Promise((resolve, reject) => client.open((e) => (e ? reject(e) : resolve())));
  const twin = await new Promise((resolve, reject) => client.getTwin((e, t) => (e ? reject(e) : resolve(t))));
  console.log('DESIRED ' + JSON.stringify(strip(twin.properties.desired)));
  const patched = new Promise((resolve) => {
    twin.on('properties.desired', (delta) => {
      console.log('PATCH ' + JSON.stringify(strip(delta)));
      resolve();
    });
  });
  await new Promise((resolve, reject) =>
    twin.properties.reported.update({ firmware: '2.0.1', battery: { level: 93 } }, (e) => (e ? reject(e) : resolve())));
  const again = await new Promise((resolve, reject) => twin.get((e, t) => (e ? reject(e) : resolve(t))));
  console.log('REPORTED ' + JSON.stringify(strip(again.properties.reported)));
  await patched;
  client.onMethod('reboot', (request, response) => {
    console.log('METHOD ' + JSON.stringify(request.payload));
    response.send(200, { rebooting: true, delay: request.payload && request.payload.delay }, (e) => {
      if (e) fail('method response: ' + e);
      console.log('DONE');
      setTimeout(() => process.exit(0), 200);
    });
  });
  console.log('READY');
})().catch((e) => fail(e && e.message ? e.message : String(e)));
