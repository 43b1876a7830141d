"""A Modbus TCP server (pymodbus) for simulated legacy machines and power meters.

Each unit id has a ``ModbusImage``: four tables (coils, discrete inputs, holding and input
registers) that the simulation writes with typed values (``set``); every read is answered
from the image as it is at that moment.

>>> img = ModbusImage()
>>> img.set("holding", 10, 123.456, "float32")
>>> img.holding[10:12]
[17142, 59769]
"""

from __future__ import annotations

import asyncio
import functools
import socket
from collections.abc import Mapping

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice
from pymodbus.simulator.simutils import SimUtils

from andon.connect.modbus.codec import ByteOrder, DataType, encode
from andon.connect.modbus.plan import Table

__all__ = ["ModbusImage", "ModbusSimServer"]


class ModbusImage:
    """The four tables of one simulated device, ``size`` addresses each (from 0)."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self.coil = [0] * size
        self.discrete = [0] * size
        self.holding = [0] * size
        self.input = [0] * size
        self.requests = 0
        """Requests answered (tests check that contiguous points share one)."""

    def table(self, name: Table) -> list[int]:
        return {
            "coil": self.coil,
            "discrete": self.discrete,
            "holding": self.holding,
            "input": self.input,
        }[name]

    def set(
        self,
        table: Table,
        address: int,
        value: float,
        dtype: DataType = "uint16",
        byte_order: ByteOrder = "big",
        word_order: ByteOrder = "big",
    ) -> None:
        """Write ``value`` as the device would hold it."""
        words = [1 if value else 0] if table in ("coil", "discrete") else None
        if words is None:
            words = encode(value, dtype, byte_order, word_order)
        self.table(table)[address : address + len(words)] = words


async def _action(
    image: ModbusImage,
    function_code: int,
    start_address: int,
    address: int,
    count: int,
    current_registers: list[int],
    set_values: list[int] | list[bool] | None,
) -> None:
    """Answer reads from the image (pymodbus calls this before every access)."""
    image.requests += 1
    if function_code in (1, 2, 5, 15):
        bits = image.coil if function_code in (1, 5, 15) else image.discrete
        if set_values is not None:
            return None
        # pymodbus keeps bits packed 16 to a register: pad the table to whole registers
        flags = [bool(b) for b in bits] + [False] * (-len(bits) % 16)
        packed = SimUtils.bitsToRegisters(flags)
        current_registers[: len(packed)] = packed
        return None
    regs = image.holding if function_code in (3, 6, 16, 22, 23) else image.input
    if set_values is None:
        current_registers[:] = regs[start_address : start_address + len(current_registers)]
    return None


def _device(unit: int, image: ModbusImage) -> SimDevice:
    n = image.size
    bits = -(-n // 16) * 16  # whole registers of 16 bits (pymodbus' packing); the rest reads 0
    return SimDevice(
        unit,
        simdata=(
            [SimData(0, values=[False] * bits, datatype=SimType.BITS)],
            [SimData(0, values=[False] * bits, datatype=SimType.BITS)],
            [SimData(0, count=n, values=0, datatype=SimType.REGISTERS)],
            [SimData(0, count=n, values=0, datatype=SimType.REGISTERS)],
        ),
        use_bit_addressing=True,
        action=functools.partial(_action, image),
    )


class ModbusSimServer:
    """Serves ``devices`` (unit id → image) on ``host:port`` (port 0: a free one)."""

    def __init__(
        self, devices: Mapping[int, ModbusImage], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.devices = dict(devices)
        self.host = host
        self.port = port or _free_port(host)
        self._server: ModbusTcpServer | None = None

    async def start(self) -> None:
        sims = [_device(unit, img) for unit, img in self.devices.items()]
        self._server = ModbusTcpServer(sims, address=(self.host, self.port))
        await self._server.serve_forever(background=True)
        await asyncio.sleep(0)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port
