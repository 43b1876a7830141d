// An OPC UA server andon does not use (node-opcua), for the connector's tests.
// usage: node opcua_server.js PORT ; prints "READY <endpoint url>" when listening.
const { OPCUAServer } = require("node-opcua-server");
const { Variant, DataType, VariantArrayType } = require("node-opcua-variant");

(async () => {
  const server = new OPCUAServer({
    port: Number(process.argv[2]),
    resourcePath: "/UA/foreign",
    buildInfo: { productName: "andon-foreign-test" },
  });
  await server.initialize();
  const space = server.engine.addressSpace;
  const ns = space.registerNamespace("urn:andon:test:foreign");
  const machine = ns.addObject({ organizedBy: space.rootFolder.objects, browseName: "Machine" });
  const scalar = (browseName, nodeId) =>
    ns.addVariable({ componentOf: machine, browseName, nodeId, dataType: "Double" });
  const speed = scalar("Speed", "s=speed");
  const temp = scalar("Temperature", "g=72962B91-FA75-4AE6-8D28-B404DC7DAF63");
  const count = scalar("Count", "i=1001");
  ns.addVariable({
    componentOf: machine, browseName: "Program", nodeId: "s=program", dataType: "String",
    value: { dataType: DataType.String, value: "O1234 (ROUGH) Ø12" },
  });
  ns.addVariable({  // an enumeration (ServerState: EnumStrings Running, Failed, ...)
    componentOf: machine, browseName: "State", nodeId: "s=state", dataType: "ServerState",
    value: { dataType: DataType.Int32, value: 1 },
  });
  ns.addVariable({
    componentOf: machine, browseName: "Profile", nodeId: "s=profile", dataType: "Double",
    valueRank: 1, arrayDimensions: [3],
    value: { dataType: DataType.Double, arrayType: VariantArrayType.Array, value: [1, 2, 3] },
  });
  let t = 0;
  const tick = () => {
    t += 1;
    speed.setValueFromSource(new Variant({ dataType: DataType.Double, value: 1000 + t }));
    temp.setValueFromSource(new Variant({ dataType: DataType.Double, value: 20 + t / 10 }));
    count.setValueFromSource(new Variant({ dataType: DataType.Double, value: t }));
  };
  tick();
  setInterval(tick, 50);
  await server.start();
  console.log("READY " + server.getEndpointUrl() + " ns=" + ns.index);
})().catch((e) => { console.error(e); process.exit(1); });
